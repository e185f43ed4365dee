"""The test suite, a package so that shared helpers import as modules (tests.engines.handbuilt, ...)."""
