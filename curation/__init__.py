"""Pure curation functions on schemas/ records: no Prefect, no environment variables, no global state."""
