"""Lenient msgspec Structs for the wire formats eldric speaks.

They decode only what eldric routes on and ignore every other field; the raw bytes travel
on untouched.
"""
