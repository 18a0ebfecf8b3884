#!/usr/bin/env bash
# Installs the Debian packages that mailbrake's tests run for real (a private
# Postfix, swaks, Cyrus SASL, ...). Idempotent: it does nothing when every
# package is present, and runs `apt-get update` only when something is missing.
#
# As root it installs what is missing without starting the system services
# (the tests start private instances on loopback ports). As any other user it
# prints what is missing and exits 0: the tests that need a package skip.
set -euo pipefail

# ---------------------------------------------------------------------------
# Packages the tests need. One package per line, with the test that needs it.
# Later test suites: append here (for example slapd + ldap-utils,
# dovecot-core + dovecot-imapd, redis-server, postgresql, chromium).
# ---------------------------------------------------------------------------
packages=(
  postfix          # internal/postfixtest: the private Postfix 3.7 instance
  swaks            # internal/postfixtest: Instance.Send
  libsasl2-modules # internal/postfixtest: Cyrus SASL PLAIN/LOGIN for Postfix smtpd
  sasl2-bin        # internal/postfixtest: saslpasswd2 writes the private sasldb
  slapd            # internal/ldaptest: the private OpenLDAP server
  ldap-utils       # internal/ldaptest: ldapadd/ldapsearch for seeding and checks
  dovecot-core     # internal/dovecottest: the private Dovecot (auth, doveadm HTTP API)
  dovecot-imapd    # internal/dovecottest: IMAP sessions that a kick must end
  chromium         # internal/e2e: the web UI driven in headless Chromium (chromedp)
  prometheus       # internal/daemon: promtool check rules on contrib/prometheus/mailbrake-rules.yml
  redis-server     # internal/redistest: the private Redis of cluster mode's shared counters
  postgresql       # internal/pgtest: the private PostgreSQL of cluster mode's store (internal/store/postgres)
)
# package:service for packages whose installation may start a system service;
# the tests never use the system instances, so they must not be left running.
# Append here too (for example slapd:slapd, redis-server:redis-server).
services=(
  postfix:postfix
  sasl2-bin:saslauthd
  slapd:slapd
  dovecot-core:dovecot
  prometheus:prometheus
  redis-server:redis-server
  postgresql:postgresql
)
# ---------------------------------------------------------------------------

installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

missing=()
for p in "${packages[@]}"; do
  installed "$p" || missing+=("$p")
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-test-deps: all test packages present"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-test-deps: not root; missing Debian packages: ${missing[*]}"
  echo "install-test-deps: the tests that need them will skip"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-test-deps: no apt-get; missing Debian packages: ${missing[*]}"
  echo "install-test-deps: the tests that need them will skip"
  exit 0
fi

echo "install-test-deps: installing ${missing[*]}"

# policy-rc.d exit code 101 tells invoke-rc.d (and deb-systemd-invoke) not to
# start services during installation. Install a temporary one unless the
# machine already has its own, and remove only what we created.
policy=/usr/sbin/policy-rc.d
created_policy=
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# temporary, from mailbrake scripts/install-test-deps.sh\nexit 101\n' >"$policy"
  chmod 0755 "$policy"
  created_policy=1
fi
cleanup() {
  if [ -n "$created_policy" ]; then rm -f "$policy"; fi
}
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
# postfix asks debconf for its mail configuration; the tests never use the
# system instance, so the quietest answer is enough.
if printf '%s\n' "${missing[@]}" | grep -qx postfix; then
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
fi
# slapd would otherwise configure a system directory; the tests run their own.
if printf '%s\n' "${missing[@]}" | grep -qx slapd; then
  echo "slapd slapd/no_configuration boolean true" | debconf-set-selections
fi
apt-get update
apt-get install -y --no-install-recommends "${missing[@]}"

# A package whose installation started its system service anyway (no
# policy-rc.d honoured, or a systemd preset): stop it and keep it from
# starting at boot. Only services of packages installed by this run are
# touched, so a developer's own running mail server is left alone.
for entry in "${services[@]}"; do
  p="${entry%%:*}"
  s="${entry#*:}"
  printf '%s\n' "${missing[@]}" | grep -qx "$p" || continue
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    systemctl disable --now "$s" >/dev/null 2>&1 || true
  fi
  if [ "$s" = postfix ]; then
    if /usr/sbin/postfix status >/dev/null 2>&1; then
      /usr/sbin/postfix stop || true
    fi
  elif [ -x "/etc/init.d/$s" ]; then
    "/etc/init.d/$s" stop >/dev/null 2>&1 || true
  fi
done
echo "install-test-deps: done"
