"""The gankit version, in one place (rank 0 of the layers: anything may import it)."""

VERSION = "0.2.0"
