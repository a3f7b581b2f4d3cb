"""Key-encryption-key providers: a local key file, HashiCorp Vault Transit, AWS KMS."""
