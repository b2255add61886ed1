typedef int stub_unused_; /* placeholder, replaced by the module */
