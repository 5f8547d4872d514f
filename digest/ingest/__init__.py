"""Sources of papers: each turns one input into a `Dump` (see `hf_dump`)."""
