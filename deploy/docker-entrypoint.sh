#!/bin/sh
# First start: create config, data dir and a self-signed certificate for
# $COIMAIL_DOMAIN in the /data volume; later starts find them there.
set -eu
if [ ! -f "$COIMAIL_CONFIG" ]; then
    : "${COIMAIL_DOMAIN:?set COIMAIL_DOMAIN (e.g. -e COIMAIL_DOMAIN=example.org) for the first start}"
    coimail init --domain "$COIMAIL_DOMAIN" --data "$(dirname "$COIMAIL_CONFIG")" ${COIMAIL_HOSTNAME:+--hostname "$COIMAIL_HOSTNAME"}
fi
exec coimail "$@"
