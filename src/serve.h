/* serve.h — `mcpauth serve` (serve.c). Returns the process exit status. */
#pragma once
int serve_main(int argc, char **argv);
