"""The Trio runtime: the gateway, its attempts, the provider transports, usage writing and the
stores of the state that several gateway processes may share.  Imports :mod:`minillm.core`."""
