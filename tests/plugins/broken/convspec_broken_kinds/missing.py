"""A plugin whose import fails: it needs a package that is not installed."""

import convspec_not_installed_anywhere  # noqa: F401

KINDS = []
