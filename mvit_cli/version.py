"""The package's version, in a module of its own: every module that records it in an
output imports it from here, not from the package, whose `__init__` imports them back."""

__version__ = "0.2.0"
