"""OpenAI-compatible files and batches: a JSONL file of requests, run as jobs, answered by an
output file and an error file."""
