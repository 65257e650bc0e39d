"""Boolean circuits for the 3-party engine: AES, SHA-1, HMAC-SHA1-96, adders, equality.

Every function takes a builder (``mpc.builder.CircuitBuilder``, or the evaluating
``mpc.circuits.plain_builder.PlainBuilder`` used as a test oracle) and wire lists, and returns
wire lists. Byte strings are MSB-first: wire 8*j + k carries bit 7 - k of byte j.
"""
