#!/bin/sh
# Write relaygate-secrets.env: the secrets every replica and every worker must share.
# Run it once, on one machine, then copy the file to the others (never commit it).
# Needs only openssl. Refuses to overwrite an existing file: new values would make the
# sealed signing secrets and the vault's credentials unreadable.
set -eu
out="${1:-relaygate-secrets.env}"
if [ -e "$out" ]; then
  echo "$out exists; not overwriting it" >&2
  exit 1
fi
b64url() { openssl rand -base64 "$1" | tr '+/' '-_' | tr -d '=\n'; }
umask 077
cat > "$out" <<SECRETS
RELAYGATE_ADMIN_KEY='$(b64url 32)'
RELAYGATE_MASTER_KEY='$(b64url 32)'
RELAYGATE_KEK='{"kek_id": "local-$(openssl rand -hex 4)", "min_version": 1, "versions": {"1": "$(b64url 32)"}}'
RELAYGATE_AUDIT_KEY='$(b64url 32)'
RELAYGATE_PII_SALT='$(b64url 32)'
RELAYGATE_ADMIN_SIGNING_SECRET='$(b64url 32)'
SECRETS
echo "wrote $out (mode 0600); copy it to every machine that runs relaygate serve or worker"
