"""The Trio runtime: stores of the state that several gateway processes may share."""
