# mcpauth — the two commands of the README:
#   make run    build and start mcpauth with embedded defaults and the demo policy
#   make test   build (ASan+UBSan, warnings as errors) and run every test
# Both install what is missing first (scripts/deps.sh), and are quiet when it is there.

BUILD      ?= build
TEST_BUILD ?= build-test
MESON_OPTS ?=

.PHONY: all run test unit e2e deps deps-test clean format

all: $(BUILD)/mcpauth

deps:
	@scripts/deps.sh build

deps-test:
	@scripts/deps.sh test

$(BUILD)/build.ninja: | deps
	@meson setup $(BUILD) $(MESON_OPTS) >/dev/null

$(BUILD)/mcpauth: deps $(BUILD)/build.ninja FORCE
	@ninja -C $(BUILD) >/dev/null || ninja -C $(BUILD)

FORCE:

run: $(BUILD)/mcpauth
	@$(BUILD)/mcpauth serve --config examples/config.yaml

$(TEST_BUILD)/build.ninja: | deps-test
	@meson setup $(TEST_BUILD) -Db_sanitize=address,undefined -Db_lundef=false \
	    -Dwerror=true -Dtests=enabled >/dev/null

test: deps-test $(TEST_BUILD)/build.ninja
	@ninja -C $(TEST_BUILD) >/dev/null || ninja -C $(TEST_BUILD)
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	    meson test -C $(TEST_BUILD) --print-errorlogs --num-processes 2
	@cd tests/e2e && MCPAUTH_BIN=$(CURDIR)/$(TEST_BUILD)/mcpauth \
	    ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	    node --test --test-concurrency=2 *.test.mjs

clean:
	rm -rf $(BUILD) $(TEST_BUILD)

format:
	clang-format -i src/*.c src/*.h src/*/*.c src/*/*.h tests/unit/*.c tests/fuzz/*.c
