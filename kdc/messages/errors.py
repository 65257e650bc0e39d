"""The codec's two exceptions, shared by the pure and the compiled DER codec (``codec.py``)
and the pyasn1 reference, so ``except DecodeError`` catches whichever codec raised."""


class DecodeError(ValueError):
    """The bytes are not a valid DER encoding of the expected RFC 4120 type."""


class EncodeError(ValueError):
    """A model object holds a value that RFC 4120 cannot carry (e.g. an Int32 out of range)."""
