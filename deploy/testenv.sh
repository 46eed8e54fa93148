#!/usr/bin/env bash
# deploy/testenv.sh - real servers for coexist's tests, on loopback.
#
#   deploy/testenv.sh up    [slapd|slapd-qmail|samba|postgres|dns ...]  install what is missing, start, write the env file
#   deploy/testenv.sh stop  [slapd|slapd-qmail|samba|postgres|dns ...]  stop, keep the data (a later `up` restarts it)
#   deploy/testenv.sh down  [slapd|slapd-qmail|samba|postgres|dns ...]  stop and remove the data (all: the state dir)
#   deploy/testenv.sh env                                                print the env file (export NAME=value lines)
#   deploy/testenv.sh status                                             say what runs
#
# No server given means all five (dns: NSD, an authoritative DNS server). State lives in ${COEXIST_TESTENV_DIR:-/tmp/coexist-testenv}.
# Runs as root, unattended (no stdin), on a fresh Debian 12 as well as on a prepared machine.
# See deploy/testenv/README.md.
set -eEuo pipefail
umask 022
export PATH="$PATH:/usr/sbin:/sbin"
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8

# ---------------------------------------------------------------------------
# Fixed test settings. Test credentials, loopback only: kept here, in one place.
# ---------------------------------------------------------------------------
readonly SLAPD_PASSWORD='coexist-ldap-test-pw'      # cn=admin of every slapd database (and cn=config)
readonly SAMBA_PASSWORD='Coexist-AD-Test-Pw-2024'   # AD Administrator (meets AD complexity)
readonly POSTGRES_PASSWORD='coexist-pg-test-pw'     # role coexist

readonly SLAPD_HOST=127.0.0.1 SLAPD_USER=openldap   # both slapds (instances: SLAPD below)

readonly SAMBA_HOST=127.0.0.2
readonly SAMBA_REALM='AD.ACMECORP.COM' SAMBA_DOMAIN='AD' SAMBA_NETBIOS='COEXISTDC'
readonly SAMBA_BASE='DC=ad,DC=acmecorp,DC=com'
readonly SAMBA_ADMIN_DN="CN=Administrator,CN=Users,${SAMBA_BASE}"
readonly SAMBA_STUB_OU="OU=coexist,${SAMBA_BASE}"
readonly SAMBA_TEMPLATE_ROOT=/var/tmp/coexist-samba-template

readonly PG_HOST=127.0.0.1 PG_PORT=5433 PG_USER=coexist PG_DB=coexist

# NSD, authoritative for one zone per shape of a split domain's DNS
# (<shape>.acmecorp.test, its routing domains gapps.<shape>... and
# mithi.<shape>..., the smart host mail.<shape>...), and a stand-in google.com
# holding Google's SPF includes (_spf.google.com and its _netblocks).
readonly DNS_HOST=127.0.0.1 DNS_PORT=5300 DNS_DOMAIN=acmecorp.test
readonly DNS_SHAPES=(correct mx-wrong spf-missing spf-too-many-lookups two-spf dkim-missing dmarc-absent routing-no-mx)
# A 2048-bit RSA public key (SubjectPublicKeyInfo, base64) for the DKIM records.
readonly DNS_DKIM_KEY='MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAvqKnCKXnQJ+unzsKi+9rjPgVmYSyOegI65Z5gqwkpojCwPjVxGkpNcihGd0HssiIlEsGq2ANSBmu8EmlXrumgeudSpHXzxDr1DNfq4tRNN7bYhjIhZ7MPbOfsMrglzvvIht14pxRRo2AjVY9h2kjTA+TDX8aqKfqTBY+TLl5108iaUxPO6Hhq+G29Dra2ZS3/VeBLYbYRkMm4qUQ6RtPhs67XBIRSyFXzQsP2vv+ZDV2tb+RCwXfElLDtO4GMqu1khvQPJ1/AAj17cXqurU9sfyfAIMIgBQjrvGTLFOU/OQ35tc2KFeLYS82pX7A8OFvk72ZdOJnNy4bMZ1c4y9PawIDAQAB'

readonly STATE_DIR="${COEXIST_TESTENV_DIR:-/tmp/coexist-testenv}"
readonly CERT_DIR="$STATE_DIR/certs"
readonly SAMBA_DIR="$STATE_DIR/samba"
readonly PG_DIR="$STATE_DIR/postgres"
readonly DNS_DIR="$STATE_DIR/dns"
readonly ENV_FILE="$STATE_DIR/env"
readonly ALL_SERVERS=(slapd slapd-qmail samba postgres dns)
QMAIL_SCHEMA_LDIF="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/testenv/qmail.ldif"
readonly QMAIL_SCHEMA_LDIF

# The two slapds, one group of fields each, built by the same slapd_* functions.
# Both run as $SLAPD_USER on $SLAPD_HOST, with cn=admin of every database (and of
# cn=config) at $SLAPD_PASSWORD, and the certificate certs/slapd.pem.
#   slapd        misc.schema (inetLocalMailRecipient); dc=acmecorp,dc=com with
#                syncprov and dc=plain,dc=test without.
#   slapd-qmail  shaped like a qmail-ldap server: the qmail-ldap schema
#                (deploy/testenv/qmail.ldif) and no misc.schema.
# Fields of INSTANCE:
#   dir              its state dir: config, run (pid file, ldapi socket), db, slapd.log
#   port, tls_port   ldap:// (StartTLS) and ldaps:// ports; no tls_port: no LDAPS
#   schema           /etc/ldap/schema/NAME.ldif included, in order
#   schema_file      then this file of the repository (copied into dir), if any;
#   schema_file_what what messages call it
#   schema_has       names the self-test wants in cn=subschema (from schema_file) ...
#   schema_lacks     ... and must not find there, and where they would come from:
#   schema_lacks_what
#   sync_cookie      1: the self-test wants a cookie in a content-sync answer
#   dbs              its databases ({1}mdb, {2}mdb, ...), the main one first
#   env              prefix of its variables in the env file
#   env_log          1: the env file names its log (<env>_LOG)
# Fields of INSTANCE.DB (in dir/db/DB): suffix; o of its root entry; ous, the OUs
# made under it (ou=coexist with description stub_desc, if set); maxsize (bytes);
# index, attributes indexed eq; syncprov (1: with the syncprov overlay); env,
# infix of its variables in the env file (not for the main database).
readonly SLAPD_INSTANCES=(slapd slapd-qmail)
declare -rA SLAPD=(
    [slapd.dir]="$STATE_DIR/slapd"
    [slapd.port]=3389
    [slapd.tls_port]=3636
    [slapd.schema]='core cosine nis inetorgperson misc'
    [slapd.schema_file]=''
    [slapd.schema_file_what]=''
    [slapd.schema_has]=''
    [slapd.schema_lacks]=''
    [slapd.schema_lacks_what]=''
    [slapd.sync_cookie]=1
    [slapd.dbs]='acmecorp plain'
    [slapd.env]=COEXIST_TEST_SLAPD
    [slapd.env_log]=0
    [slapd.acmecorp.suffix]='dc=acmecorp,dc=com'
    [slapd.acmecorp.o]='Acme Corp'
    [slapd.acmecorp.ous]='people groups coexist'
    [slapd.acmecorp.stub_desc]='coexist stubs for recipients homed elsewhere'
    [slapd.acmecorp.maxsize]=8589934592
    [slapd.acmecorp.index]='objectClass mail mailLocalAddress mailRoutingAddress uid cn member entryUUID entryCSN'
    [slapd.acmecorp.syncprov]=1
    [slapd.acmecorp.env]=''
    [slapd.plain.suffix]='dc=plain,dc=test'
    [slapd.plain.o]='Plain test directory (no syncprov)'
    [slapd.plain.ous]='people coexist'
    [slapd.plain.stub_desc]=''
    [slapd.plain.maxsize]=2147483648
    [slapd.plain.index]='objectClass mail mailLocalAddress uid cn entryUUID'
    [slapd.plain.syncprov]=0
    [slapd.plain.env]=PLAIN

    [slapd-qmail.dir]="$STATE_DIR/slapd-qmail"
    [slapd-qmail.port]=3390
    [slapd-qmail.tls_port]=''
    [slapd-qmail.schema]='core cosine nis inetorgperson'
    [slapd-qmail.schema_file]="$QMAIL_SCHEMA_LDIF"
    [slapd-qmail.schema_file_what]='the qmail-ldap schema'
    [slapd-qmail.schema_has]='qmailUser mailForwardingAddress'
    [slapd-qmail.schema_lacks]='inetLocalMailRecipient'
    [slapd-qmail.schema_lacks_what]='misc.schema'
    [slapd-qmail.sync_cookie]=0
    [slapd-qmail.dbs]='qmail'
    [slapd-qmail.env]=COEXIST_TEST_SLAPD_QMAIL
    [slapd-qmail.env_log]=1
    [slapd-qmail.qmail.suffix]='dc=qmail,dc=test'
    [slapd-qmail.qmail.o]='qmail-ldap style test directory'
    [slapd-qmail.qmail.ous]='people coexist'
    [slapd-qmail.qmail.stub_desc]='coexist stubs for recipients homed elsewhere'
    [slapd-qmail.qmail.maxsize]=1073741824
    [slapd-qmail.qmail.index]='objectClass mail mailAlternateAddress uid cn entryUUID entryCSN'
    [slapd-qmail.qmail.syncprov]=1
    [slapd-qmail.qmail.env]=''
)

# Bump to force running servers (and the Samba template) to be rebuilt after a change
# that the recipes below do not see (they hash the generated configs, not this script).
readonly RECIPE_VERSION=1

READY_TIMEOUT=${COEXIST_TESTENV_TIMEOUT:-60}   # seconds to wait for a server to answer

# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------
say() { printf 'testenv: %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

# die_log LOGFILE MESSAGE: fail, showing the tail of a server log.
die_log() {
    local log=$1; shift
    say "ERROR: $*"
    if [[ -s $log ]]; then
        say "---- last lines of $log ----"
        tail -n 40 "$log" >&2 || true
        say "---- end of $log ----"
    fi
    exit 1
}

CLEANUPS=()
run_cleanups() {
    local i
    for ((i = ${#CLEANUPS[@]} - 1; i >= 0; i--)); do eval "${CLEANUPS[i]}" || true; done
}
trap run_cleanups EXIT
# Anything failing that is not handled with its own message still says where.
trap 'say "ERROR: unexpected failure (status $?) at line $LINENO: $BASH_COMMAND"' ERR

# now_ms: milliseconds since the epoch, for timings.
now_ms() { local t; t=$(date +%s%N); echo $((t / 1000000)); }

# hash of whatever is on stdin, short.
short_hash() { sha256sum | cut -c1-16; }

# pid_of FILE: the pid in a pid file (first line), or nothing.
pid_of() {
    if [[ -r $1 ]]; then head -n1 "$1" | tr -dc '0-9'; fi
}

# alive PID NAME: process PID runs (not a zombie waiting for its reaper) and its
# command is NAME (guards against pid reuse).
alive() {
    local pid=$1 name=$2 comm state
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 1
    comm=$(cat "/proc/$pid/comm" 2>/dev/null || true)
    state=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$pid/status" 2>/dev/null || true)
    [[ $comm == "$name"* && $state != [ZX] ]]
}

# port_busy HOST PORT: something accepts TCP connections there.
port_busy() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# require_port_free SERVER HOST PORT: fail clearly when another process listens there.
require_port_free() {
    local server=$1 host=$2 port=$3 who=''
    port_busy "$host" "$port" || return 0
    if command -v ss >/dev/null 2>&1; then
        who=$(ss -Htlnp "sport = :$port" 2>/dev/null | awk '{print $4, $6}' | tr '\n' ' ')
    fi
    die "$server: $host:$port is already in use${who:+ ($who)}, not by this state dir's $server. Another deploy/testenv.sh state dir (COEXIST_TESTENV_DIR) or a system service holds it: stop that first"
}

# stop_pid PID NAME: TERM, wait up to 20 s, then KILL.
stop_pid() {
    local pid=$1 name=$2 i
    alive "$pid" "$name" || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 200; i++)); do
        alive "$pid" "$name" || return 0
        sleep 0.1
    done
    say "$name (pid $pid) did not stop in 20 s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.2
}

# attempt FUNCTION...: run the functions in a subshell, errexit in force, and
# return its status (a failure, with its message, does not end this script).
# Call it as a plain statement: `attempt f || rc=$?`; inside an `if` bash
# would ignore errexit in the subshell.
attempt() {
    local rc=0
    ("$@") &
    wait "$!" || rc=$?
    return "$rc"
}

# urlencode STRING: percent-encode everything but unreserved characters.
urlencode() {
    local s=$1 out='' c i
    for ((i = 0; i < ${#s}; i++)); do
        c=${s:i:1}
        case $c in
            [A-Za-z0-9._~-]) out+=$c ;;
            *) out+=$(printf '%%%02X' "'$c") ;;
        esac
    done
    printf '%s' "$out"
}

# env_line NAME VALUE: one `export NAME=value` line, quoted only when needed.
env_line() {
    local name=$1 value=$2
    if [[ $value =~ ^[A-Za-z0-9_.,:/=@%+-]*$ ]]; then
        printf 'export %s=%s\n' "$name" "$value"
    else
        [[ $value != *"'"* ]] || die "internal: value of $name contains a quote"
        printf "export %s='%s'\n" "$name" "$value"
    fi
}

require_root() {
    [[ $(id -u) -eq 0 ]] || die "must run as root (it installs Debian packages and Samba runs as root)"
}

# ---------------------------------------------------------------------------
# Packages
# ---------------------------------------------------------------------------
packages_for() {
    case $1 in
        slapd | slapd-qmail) echo slapd ldap-utils ;;
        # samba-vfs-modules: provisioning sets sysvol ACLs through vfs acl_xattr.
        # winbind is not needed: the DC runs only its ldap service.
        samba) echo samba samba-ad-provision samba-dsdb-modules samba-vfs-modules ldap-utils ;;
        postgres) echo postgresql ;;
        # dig (bind9-dnsutils) for the self-test.
        dns) echo nsd bind9-dnsutils ;;
    esac
}

is_installed() {
    [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true) == 'install ok installed' ]]
}

# The programs tests run besides the servers, installed with any of them:
# promtool (package prometheus; checks the daemon's /metrics) and a headless
# Chromium (the status page's tests). The env file names them.
readonly TOOL_PACKAGES=(prometheus chromium)

ensure_packages() {
    local -a want=(openssl "${TOOL_PACKAGES[@]}") missing=()
    local s p
    for s in "$@"; do
        # shellcheck disable=SC2207
        want+=($(packages_for "$s"))
    done
    for p in "${want[@]}"; do
        is_installed "$p" || missing+=("$p")
    done
    ((${#missing[@]})) || return 0
    # Deduplicate, keep order.
    # shellcheck disable=SC2207
    missing=($(printf '%s\n' "${missing[@]}" | awk '!seen[$0]++'))

    say "installing Debian packages: ${missing[*]}"
    local t0; t0=$(now_ms)

    # slapd: no configuration of its own (we build ours); no prompts anywhere.
    debconf-set-selections <<'EOF'
slapd slapd/no_configuration boolean true
samba-common samba-common/dhcp boolean false
samba-common samba-common/workgroup string WORKGROUP
EOF
    # Keep package scripts from starting system-wide services on the default ports.
    local policy=/usr/sbin/policy-rc.d
    if [[ -e $policy || -L $policy ]]; then
        mv -f "$policy" "$policy.coexist-saved"
        CLEANUPS+=("mv -f '$policy.coexist-saved' '$policy'")
    else
        CLEANUPS+=("rm -f '$policy'")
    fi
    printf '#!/bin/sh\n# written by coexist deploy/testenv.sh during apt-get install\nexit 101\n' >"$policy"
    chmod 755 "$policy"

    local log="${TMPDIR:-/tmp}/coexist-testenv-apt.$$.log" try
    local -a apt_opts=(-y -q -o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
    : >"$log"
    # Another apt may hold the lists lock for a while: retry. A source that
    # fails to update is not fatal by itself; the install says whether it matters.
    for try in 1 2 3; do
        apt-get "${apt_opts[@]}" update </dev/null >>"$log" 2>&1 && break
        say "apt-get update failed (try $try of 3)"
        ((try == 3)) || sleep 10
    done
    for try in 1 2; do
        apt-get "${apt_opts[@]}" install --no-install-recommends "${missing[@]}" </dev/null >>"$log" 2>&1 && break
        if ((try == 2)) || ! grep -q 'dpkg --configure -a' "$log"; then
            die_log "$log" "apt-get install ${missing[*]} failed"
        fi
        say "dpkg was interrupted earlier: running dpkg --configure -a, then retrying"
        dpkg --configure -a </dev/null >>"$log" 2>&1 || true
    done
    rm -f "$log"
    # Restore policy-rc.d now rather than at exit.
    run_cleanups
    CLEANUPS=()
    say "packages installed in $(($(now_ms) - t0)) ms"
}

# ---------------------------------------------------------------------------
# State directory, lock, certificates
# ---------------------------------------------------------------------------
LOCK_FD=9
take_lock() {
    mkdir -p "$(dirname "$STATE_DIR")"
    eval "exec $LOCK_FD>>'${STATE_DIR}.lock'"
    if ! flock -w 900 "$LOCK_FD"; then
        die "another deploy/testenv.sh holds ${STATE_DIR}.lock for more than 15 min"
    fi
}

make_state_dir() {
    mkdir -p "$STATE_DIR"
    chmod 755 "$STATE_DIR"   # the openldap and postgres users must traverse it
}

# issue_cert NAME CN SAN: a server key and certificate signed by the test CA.
issue_cert() {
    local name=$1 cn=$2 san=$3 d=$CERT_DIR
    openssl req -new -newkey rsa:2048 -nodes -keyout "$d/$name.key" -out "$d/$name.csr" \
        -subj "/O=coexist test/CN=$cn" 2>/dev/null
    cat >"$d/$name.ext" <<EOF
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = $san
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
EOF
    openssl x509 -req -in "$d/$name.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial \
        -days 825 -sha256 -extfile "$d/$name.ext" -out "$d/$name.pem" 2>/dev/null
    rm -f "$d/$name.csr" "$d/$name.ext"
    chmod 600 "$d/$name.key"
}

# cert_ok NAME: NAME.pem exists, is signed by the current CA and valid for another day.
cert_ok() {
    [[ -s $CERT_DIR/$1.pem && -s $CERT_DIR/$1.key ]] &&
        openssl verify -CAfile "$CERT_DIR/ca.pem" "$CERT_DIR/$1.pem" >/dev/null 2>&1 &&
        openssl x509 -checkend 86400 -noout -in "$CERT_DIR/$1.pem" >/dev/null 2>&1
}

ensure_certs() {
    mkdir -p "$CERT_DIR"
    chmod 755 "$CERT_DIR"
    if ! [[ -s $CERT_DIR/ca.pem && -s $CERT_DIR/ca.key ]] ||
        ! openssl x509 -checkend 86400 -noout -in "$CERT_DIR/ca.pem" >/dev/null 2>&1; then
        say "generating the test CA"
        rm -f "$CERT_DIR"/*.pem "$CERT_DIR"/*.key "$CERT_DIR"/*.srl
        openssl req -x509 -new -newkey rsa:2048 -nodes -sha256 -days 3650 \
            -keyout "$CERT_DIR/ca.key" -out "$CERT_DIR/ca.pem" \
            -subj "/O=coexist test/CN=coexist test CA" \
            -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign" \
            -addext "subjectKeyIdentifier=hash" 2>/dev/null
        chmod 600 "$CERT_DIR/ca.key"
    fi
    # libldap checks "localhost" against the machine's host name, hence that name too.
    local host san="IP:$SLAPD_HOST, DNS:localhost"
    host=$(hostname 2>/dev/null || true)
    if [[ $host =~ ^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$ && $host != localhost ]]; then
        san+=", DNS:$host"
    else
        host=localhost
    fi
    if ! cert_ok slapd || ! openssl x509 -noout -checkhost "$host" -in "$CERT_DIR/slapd.pem" 2>/dev/null | grep -q 'does match'; then
        issue_cert slapd localhost "$san"
    fi
    if ! cert_ok samba; then
        issue_cert samba "${SAMBA_NETBIOS,,}.${SAMBA_REALM,,}" \
            "IP:$SAMBA_HOST, DNS:${SAMBA_NETBIOS,,}.${SAMBA_REALM,,}"
    fi
    # slapd runs as openldap and reads its key; Samba wants its key 0600 root.
    if id "$SLAPD_USER" >/dev/null 2>&1; then
        chown "$SLAPD_USER:" "$CERT_DIR/slapd.key"
    fi
}

# ---------------------------------------------------------------------------
# OpenLDAP slapd: both instances (slapd, slapd-qmail), described in $SLAPD
# above and built by the same functions; each takes the instance name first.
# ---------------------------------------------------------------------------
slapd_config_dir() { echo "${SLAPD[$1.dir]}/config"; }
slapd_pidfile() { echo "${SLAPD[$1.dir]}/run/slapd.pid"; }
slapd_socket() { echo "${SLAPD[$1.dir]}/run/ldapi"; }
slapd_ldapi_url() { echo "ldapi://$(urlencode "$(slapd_socket "$1")")"; }
slapd_log() { echo "${SLAPD[$1.dir]}/slapd.log"; }
slapd_url() { echo "ldap://$SLAPD_HOST:${SLAPD[$1.port]}"; }
# ldaps:// URL, or nothing for an instance without LDAPS.
slapd_ldaps_url() {
    if [[ -n ${SLAPD[$1.tls_port]} ]]; then echo "ldaps://$SLAPD_HOST:${SLAPD[$1.tls_port]}"; fi
}
# What slapd -h listens on.
slapd_urls() {
    local ldaps; ldaps=$(slapd_ldaps_url "$1")
    echo "$(slapd_url "$1")/ ${ldaps:+$ldaps/ }$(slapd_ldapi_url "$1")"
}
# slapd_main_db INSTANCE: its main database (the first).
slapd_main_db() { echo "${SLAPD[$1.dbs]%% *}"; }
# slapd_base INSTANCE: the suffix of its main database.
slapd_base() { local main; main=$(slapd_main_db "$1"); echo "${SLAPD[$1.$main.suffix]}"; }

# slapd_config_ldif INSTANCE HASH: the cn=config tree, loaded with slapadd -n0.
slapd_config_ldif() {
    local i=$1 hash=$2 root_ext='gidNumber=0+uidNumber=0,cn=peercred,cn=external,cn=auth'
    local dir=${SLAPD[$1.dir]} schema_file=${SLAPD[$1.schema_file]} s db p n=0
    cat <<EOS
dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: $(slapd_pidfile "$i")
olcArgsFile: $dir/run/slapd.args
olcLogLevel: none
olcSizeLimit: unlimited
olcTimeLimit: unlimited
olcToolThreads: 2
olcTLSCACertificateFile: $CERT_DIR/ca.pem
olcTLSCertificateFile: $CERT_DIR/slapd.pem
olcTLSCertificateKeyFile: $CERT_DIR/slapd.key

dn: cn=module{0},cn=config
objectClass: olcModuleList
cn: module{0}
olcModulePath: /usr/lib/ldap
olcModuleLoad: {0}back_mdb
olcModuleLoad: {1}syncprov

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema
EOS
    for s in ${SLAPD[$i.schema]}; do
        printf '\ninclude: file:///etc/ldap/schema/%s.ldif\n' "$s"
    done
    if [[ -n $schema_file ]]; then
        printf '\ninclude: file://%s/%s\n' "$dir" "$(basename "$schema_file")"
    fi
    cat <<EOS

dn: olcDatabase={-1}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {-1}frontend
olcSizeLimit: unlimited
olcTimeLimit: unlimited
olcAccess: {0}to * by dn.exact=$root_ext manage by * break
olcAccess: {1}to dn.base="" by * read
olcAccess: {2}to dn.base="cn=subschema" by * read

dn: olcDatabase={0}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {0}config
olcRootDN: cn=admin,cn=config
olcRootPW: $hash
olcAccess: {0}to * by dn.exact=$root_ext manage by * break
EOS
    for db in ${SLAPD[$i.dbs]}; do
        p=$i.$db
        n=$((n + 1))
        cat <<EOS

dn: olcDatabase={$n}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {$n}mdb
olcSuffix: ${SLAPD[$p.suffix]}
olcRootDN: cn=admin,${SLAPD[$p.suffix]}
olcRootPW: $hash
olcDbDirectory: $dir/db/$db
olcDbMaxSize: ${SLAPD[$p.maxsize]}
olcDbNoSync: TRUE
olcSizeLimit: unlimited
olcTimeLimit: unlimited
olcLastMod: TRUE
EOS
        for s in ${SLAPD[$p.index]}; do echo "olcDbIndex: $s eq"; done
        cat <<'EOS'
olcAccess: {0}to attrs=userPassword by self write by anonymous auth by * none
olcAccess: {1}to * by * read
EOS
        if [[ ${SLAPD[$p.syncprov]} == 1 ]]; then
            cat <<EOS

dn: olcOverlay={0}syncprov,olcDatabase={$n}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcSyncProvConfig
olcOverlay: {0}syncprov
olcSpCheckpoint: 100 10
olcSpSessionlog: 10000
EOS
        fi
    done
}

# slapd_db_ldif INSTANCE DB: the entries a database starts with, loaded with slapadd.
slapd_db_ldif() {
    local p=$1.$2 suffix dc ou
    suffix=${SLAPD[$p.suffix]}
    dc=${suffix%%,*}
    cat <<EOS
dn: $suffix
objectClass: dcObject
objectClass: organization
dc: ${dc#dc=}
o: ${SLAPD[$p.o]}
EOS
    for ou in ${SLAPD[$p.ous]}; do
        printf '\ndn: ou=%s,%s\nobjectClass: organizationalUnit\nou: %s\n' "$ou" "$suffix" "$ou"
        if [[ $ou == coexist && -n ${SLAPD[$p.stub_desc]} ]]; then
            echo "description: ${SLAPD[$p.stub_desc]}"
        fi
    done
}

# slapd_db_file INSTANCE DB: where slapd_build writes that LDIF.
slapd_db_file() {
    if [[ $2 == "$(slapd_main_db "$1")" ]]; then
        echo "${SLAPD[$1.dir]}/base.ldif"
    else
        echo "${SLAPD[$1.dir]}/$2.ldif"
    fi
}

# The recipe: what the server is built from. When it changes, a running
# slapd is rebuilt; edits elsewhere in this script leave running servers alone.
slapd_recipe() {
    local i=$1 db
    {
        echo "$RECIPE_VERSION $SLAPD_PASSWORD $SLAPD_USER"
        slapd_config_ldif "$i" '{password}'
        if [[ -n ${SLAPD[$i.schema_file]} ]]; then
            cat "${SLAPD[$i.schema_file]}" 2>/dev/null || true
        fi
        for db in ${SLAPD[$i.dbs]}; do slapd_db_ldif "$i" "$db"; done
        slapd_urls "$i"
        cat "$CERT_DIR/slapd.pem" 2>/dev/null || true
    } | short_hash
}

slapd_answers() {
    local base; base=$(slapd_base "$1")
    ldapsearch -x -LLL -o nettimeout=3 -l 3 -H "$(slapd_url "$1")" \
        -D "cn=admin,$base" -w "$SLAPD_PASSWORD" -b "$base" -s base dn >/dev/null 2>&1
}

slapd_running() { alive "$(pid_of "$(slapd_pidfile "$1")")" slapd; }

# slapd_load INSTANCE: slapadd the config, then each database's entries.
slapd_load() {
    local i=$1 cfg db
    cfg=$(slapd_config_dir "$i")
    slapadd -n0 -F "$cfg" -l "${SLAPD[$i.dir]}/config.ldif" || return 1
    for db in ${SLAPD[$i.dbs]}; do
        slapadd -q -F "$cfg" -b "${SLAPD[$i.$db.suffix]}" -l "$(slapd_db_file "$i" "$db")" || return 1
    done
}

slapd_build() {
    local i=$1 dir=${SLAPD[$1.dir]} schema_file=${SLAPD[$1.schema_file]} t0 hash log db s=''
    t0=$(now_ms)
    if [[ -n $schema_file && ! -s $schema_file ]]; then
        die "$i: ${SLAPD[$i.schema_file_what]} $schema_file is missing (it comes with the repository)"
    fi
    if [[ ${SLAPD[$i.dbs]} == *' '* ]]; then s=s; fi
    say "$i: building a new config and database$s in $dir"
    rm -rf "$dir"
    mkdir -p "$(slapd_config_dir "$i")" "$dir/run"
    for db in ${SLAPD[$i.dbs]}; do mkdir -p "$dir/db/$db"; done
    if [[ -n $schema_file ]]; then cp "$schema_file" "$dir/$(basename "$schema_file")"; fi
    hash=$(slappasswd -h '{SSHA}' -s "$SLAPD_PASSWORD")
    slapd_config_ldif "$i" "$hash" >"$dir/config.ldif"
    for db in ${SLAPD[$i.dbs]}; do slapd_db_ldif "$i" "$db" >"$(slapd_db_file "$i" "$db")"; done
    log=$(slapd_log "$i")
    slapd_load "$i" >>"$log" 2>&1 ||
        die_log "$log" "$i: slapadd of the config${schema_file:+ (with $schema_file)} or base entries failed"
    say "$i: built in $(($(now_ms) - t0)) ms"
}

slapd_start() {
    local i=$1 log pid n
    log=$(slapd_log "$i")
    require_port_free "$i" "$SLAPD_HOST" "${SLAPD[$i.port]}"
    if [[ -n ${SLAPD[$i.tls_port]} ]]; then require_port_free "$i" "$SLAPD_HOST" "${SLAPD[$i.tls_port]}"; fi
    rm -f "$(slapd_socket "$i")" "$(slapd_pidfile "$i")"
    chown -R "$SLAPD_USER:" "${SLAPD[$i.dir]}"
    # Foreground (-d) so that errors and per-operation stats go to our log file;
    # detached with setsid, no inherited descriptors (notably not our lock).
    setsid slapd -d stats -u "$SLAPD_USER" -g "$SLAPD_USER" -F "$(slapd_config_dir "$i")" \
        -h "$(slapd_urls "$i")" \
        </dev/null >>"$log" 2>&1 9>&- &
    pid=$!
    for ((n = 0; n < READY_TIMEOUT * 10; n++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            die_log "$log" "$i exited during startup"
        fi
        if slapd_answers "$i"; then
            return 0
        fi
        sleep 0.1
    done
    kill -TERM "$pid" 2>/dev/null || true
    die_log "$log" "$i did not answer on $(slapd_url "$i") within ${READY_TIMEOUT} s"
}

# StartTLS (and LDAPS where it listens) with the test CA, ldapi, a content-sync
# search on the main database, the other databases, and the schema expectations.
slapd_selftest() {
    local i=$1 log out base main url ldaps db suffix name
    log=$(slapd_log "$i")
    main=$(slapd_main_db "$i")
    base=${SLAPD[$i.$main.suffix]}
    url=$(slapd_url "$i")
    ldaps=$(slapd_ldaps_url "$i")
    export LDAPTLS_CACERT="$CERT_DIR/ca.pem" LDAPTLS_REQCERT=demand
    local -a bind=(-x -LLL -o nettimeout=5 -l 10 -D "cn=admin,$base" -w "$SLAPD_PASSWORD")
    ldapsearch "${bind[@]}" -ZZ -H "$url" -b "$base" -s base dn >/dev/null 2>&1 ||
        die_log "$log" "$i: StartTLS with the test CA failed"
    if [[ -n $ldaps ]]; then
        ldapsearch "${bind[@]}" -H "$ldaps" -b "$base" -s base dn >/dev/null 2>&1 ||
            die_log "$log" "$i: LDAPS with the test CA failed"
    fi
    unset LDAPTLS_CACERT LDAPTLS_REQCERT
    ldapsearch -Q -LLL -Y EXTERNAL -H "$(slapd_ldapi_url "$i")" -b cn=config -s base dn >/dev/null 2>&1 ||
        die_log "$log" "$i: ldapi with SASL EXTERNAL as root failed"
    if [[ ${SLAPD[$i.$main.syncprov]} == 1 ]]; then
        out=$(ldapsearch -x -o nettimeout=5 -l 10 -D "cn=admin,$base" -w "$SLAPD_PASSWORD" \
            -H "$url" -E sync=ro -b "ou=coexist,$base" -s base dn 2>&1) ||
            die_log "$log" "$i: a content-sync (RFC 4533) refreshOnly search failed: $out"
        if [[ $out != *"SyncState control"* ]] ||
            [[ ${SLAPD[$i.sync_cookie]} == 1 && $out != *"cookie: "* ]]; then
            die_log "$log" "$i: the syncprov overlay did not answer a content-sync search: $out"
        fi
    fi
    for db in ${SLAPD[$i.dbs]}; do
        [[ $db != "$main" ]] || continue
        suffix=${SLAPD[$i.$db.suffix]}
        ldapsearch -x -LLL -o nettimeout=5 -l 10 -D "cn=admin,$suffix" -w "$SLAPD_PASSWORD" \
            -H "$url" -b "ou=coexist,$suffix" -s base dn >/dev/null 2>&1 ||
            die_log "$log" "$i: the $db database ($suffix) does not answer"
    done
    if [[ -n ${SLAPD[$i.schema_has]}${SLAPD[$i.schema_lacks]} ]]; then
        out=$(ldapsearch -x -LLL -o nettimeout=5 -l 10 -o ldif-wrap=no -H "$url" \
            -b cn=subschema -s base objectClasses attributeTypes 2>&1) ||
            die_log "$log" "$i: reading the subschema failed: $out"
        for name in ${SLAPD[$i.schema_has]}; do
            [[ $out == *"NAME '$name'"* ]] ||
                die_log "$log" "$i: ${SLAPD[$i.schema_file_what]} ($(slapd_comma_list "${SLAPD[$i.schema_has]}")) is not loaded"
        done
        for name in ${SLAPD[$i.schema_lacks]}; do
            [[ $out != *"NAME '$name'"* ]] ||
                die_log "$log" "$i: ${SLAPD[$i.schema_lacks_what]} ($(slapd_comma_list "${SLAPD[$i.schema_lacks]}")) is loaded; this server must lack it"
        done
    fi
}

# slapd_comma_list "A B C": A, B, C
slapd_comma_list() { local s=$1; echo "${s// /, }"; }

slapd_start_checked() {
    slapd_start "$1"
    slapd_selftest "$1"
}

slapd_up() {
    local i=$1 dir=${SLAPD[$1.dir]} pid ldaps
    pid=$(pid_of "$(slapd_pidfile "$i")")
    if alive "$pid" slapd; then
        if [[ $(cat "$dir/recipe" 2>/dev/null || true) == "$(slapd_recipe "$i")" ]] && cert_ok slapd && slapd_answers "$i"; then
            say "$i: already running (pid $pid), reused"
            return 0
        fi
        say "$i: the running one (pid $pid) is stale or does not answer; rebuilding"
        stop_pid "$pid" slapd
        rm -rf "$dir"
    fi
    local t0; t0=$(now_ms)
    require_port_free "$i" "$SLAPD_HOST" "${SLAPD[$i.port]}"
    local rc=1
    if [[ -d $(slapd_config_dir "$i") && $(cat "$dir/recipe" 2>/dev/null || true) == "$(slapd_recipe "$i")" ]]; then
        say "$i: restarting on its existing data"
        rc=0
        attempt slapd_start_checked "$i" || rc=$?
        if ((rc)); then
            say "$i: restarting on the existing data failed; rebuilding from scratch"
            slapd_stop "$i"
        fi
    fi
    if ((rc)); then
        slapd_build "$i"
        slapd_start_checked "$i"
    fi
    slapd_recipe "$i" >"$dir/recipe"
    ldaps=$(slapd_ldaps_url "$i")
    say "$i: up in $(($(now_ms) - t0)) ms (pid $(pid_of "$(slapd_pidfile "$i")"), $(slapd_url "$i")${ldaps:+, $ldaps})"
}

slapd_stop() {
    local pid; pid=$(pid_of "$(slapd_pidfile "$1")")
    if alive "$pid" slapd; then
        say "$1: stopping (pid $pid)"
        stop_pid "$pid" slapd
    fi
}

slapd_env() {
    local i=$1 e=${SLAPD[$1.env]} main base db ldaps
    main=$(slapd_main_db "$i")
    base=${SLAPD[$i.$main.suffix]}
    ldaps=$(slapd_ldaps_url "$i")
    env_line "${e}_URL" "$(slapd_url "$i")"
    if [[ -n $ldaps ]]; then env_line "${e}_LDAPS_URL" "$ldaps"; fi
    env_line "${e}_LDAPI" "$(slapd_ldapi_url "$i")"
    env_line "${e}_BASE" "$base"
    env_line "${e}_BIND_DN" "cn=admin,$base"
    env_line "${e}_PASSWORD" "$SLAPD_PASSWORD"
    for db in ${SLAPD[$i.dbs]}; do
        [[ $db != "$main" ]] || continue
        env_line "${e}_${SLAPD[$i.$db.env]}_BASE" "${SLAPD[$i.$db.suffix]}"
        env_line "${e}_${SLAPD[$i.$db.env]}_BIND_DN" "cn=admin,${SLAPD[$i.$db.suffix]}"
    done
    env_line "${e}_CONFIG_DIR" "$(slapd_config_dir "$i")"
    env_line "${e}_PIDFILE" "$(slapd_pidfile "$i")"
    if [[ ${SLAPD[$i.env_log]} == 1 ]]; then env_line "${e}_LOG" "$(slapd_log "$i")"; fi
}

# ---------------------------------------------------------------------------
# Samba AD DC
# ---------------------------------------------------------------------------
samba_conf() { echo "$1/etc/smb.conf"; }
samba_pidfile() { echo "$SAMBA_DIR/run/samba.pid"; }
samba_log() { echo "$SAMBA_DIR/log/samba.log"; }

# samba_write_conf DIR MODE: write smb.conf for a DC living in DIR.
samba_write_conf() {
    mkdir -p "$1/etc" "$1/run" "$1/log" "$1/cache"
    samba_conf_text "$1" "$2" >"$(samba_conf "$1")"
}

# samba_conf_text DIR MODE: smb.conf for a DC living in DIR.
# MODE template: schema updates allowed, no TLS; MODE instance: TLS with our certificate.
samba_conf_text() {
    local d=$1 mode=$2
    {
        cat <<EOF
# Written by coexist deploy/testenv.sh ($mode).
[global]
	netbios name = $SAMBA_NETBIOS
	realm = $SAMBA_REALM
	workgroup = $SAMBA_DOMAIN
	server role = active directory domain controller
	idmap_ldb:use rfc2307 = yes
	private dir = $d/private
	lock directory = $d
	state directory = $d/state
	cache directory = $d/cache
	binddns dir = $d/bind-dns
	pid directory = $d/run
	ncalrpc dir = $d/run/ncalrpc
	winbindd socket directory = $d/run/winbindd
	ntp signd socket directory = $d/run/ntp_signd
	log file = $d/log/samba.log
	max log size = 0
	log level = 1
	# 127.0.0.2 only (ports 389/636/3268/3269), leaving 127.0.0.1 free.
	# An address with a mask is taken even though no interface carries it.
	interfaces = $SAMBA_HOST/8
	bind interfaces only = yes
	# Only the LDAP server: no smbd, nbt, kdc, dns, winbindd.
	server services = ldap
	ldap server require strong auth = no
EOF
        if [[ $mode == template ]]; then
            printf '\ttls enabled = no\n\tdsdb:schema update allowed = true\n'
        else
            printf '\ttls enabled = yes\n\ttls keyfile = %s\n\ttls certfile = %s\n\ttls cafile = %s\n' \
                "$CERT_DIR/samba.key" "$CERT_DIR/samba.pem" "$CERT_DIR/ca.pem"
        fi
        cat <<EOF

[sysvol]
	path = $d/state/sysvol
	read only = No

[netlogon]
	path = $d/state/sysvol/${SAMBA_REALM,,}/scripts
	read only = No
EOF
    }
}

# Exchange-style schema extension (targetAddress; msExchRecipientTypeDetails,
# which tells shared, room and equipment mailboxes apart), and the test
# domain's layout.
samba_schema_ldif() {
    local schema="CN=Schema,CN=Configuration,$SAMBA_BASE"
    cat <<EOF
dn: CN=ms-Exch-Target-Address,$schema
changetype: add
objectClass: top
objectClass: attributeSchema
cn: ms-Exch-Target-Address
attributeID: 1.2.840.113556.1.2.352
attributeSyntax: 2.5.5.12
oMSyntax: 64
isSingleValued: TRUE
lDAPDisplayName: targetAddress
adminDisplayName: ms-Exch-Target-Address
adminDescription: ms-Exch-Target-Address
rangeLower: 1
rangeUpper: 1123
mAPIID: 32785
searchFlags: 1
isMemberOfPartialAttributeSet: TRUE
showInAdvancedViewOnly: TRUE

dn: CN=ms-Exch-Recipient-Type-Details,$schema
changetype: add
objectClass: top
objectClass: attributeSchema
cn: ms-Exch-Recipient-Type-Details
attributeID: 1.2.840.113556.1.4.7000.102.50855
attributeSyntax: 2.5.5.16
oMSyntax: 65
isSingleValued: TRUE
lDAPDisplayName: msExchRecipientTypeDetails
adminDisplayName: ms-Exch-Recipient-Type-Details
adminDescription: ms-Exch-Recipient-Type-Details
searchFlags: 1
isMemberOfPartialAttributeSet: TRUE
showInAdvancedViewOnly: TRUE

dn:
changetype: modify
add: schemaUpdateNow
schemaUpdateNow: 1
-

dn: CN=User,$schema
changetype: modify
add: mayContain
mayContain: targetAddress
mayContain: msExchRecipientTypeDetails
-

dn: CN=Contact,$schema
changetype: modify
add: mayContain
mayContain: targetAddress
-

dn:
changetype: modify
add: schemaUpdateNow
schemaUpdateNow: 1
-
EOF
}

samba_layout_ldif() {
    cat <<EOF
dn: $SAMBA_BASE
changetype: modify
replace: maxPwdAge
maxPwdAge: -9223372036854775808
-
replace: minPwdAge
minPwdAge: 0
-

dn: $SAMBA_STUB_OU
changetype: add
objectClass: organizationalUnit
ou: coexist
description: coexist stubs for recipients homed elsewhere

dn: OU=people,$SAMBA_BASE
changetype: add
objectClass: organizationalUnit
ou: people
EOF
}

samba_version() { samba -V 2>/dev/null | awk '{print $2}'; }

# samba_provision_args TARGETDIR: how the template domain is provisioned.
samba_provision_args() {
    printf '%s\n' --targetdir="$1" --realm="$SAMBA_REALM" --domain="$SAMBA_DOMAIN" --server-role=dc \
        --dns-backend=NONE --use-rfc2307 --backend-store=mdb \
        --host-name="${SAMBA_NETBIOS,,}" --host-ip="$SAMBA_HOST" --adminpass="$SAMBA_PASSWORD"
}

# The template's key: Samba's version and what the template is built from.
samba_template_key() {
    {
        echo "$RECIPE_VERSION"
        samba_version
        samba_provision_args /template
        samba_conf_text /template template
        samba_schema_ldif
        samba_layout_ldif
    } | short_hash
}

samba_recipe() {
    {
        samba_template_key
        samba_conf_text "$SAMBA_DIR" instance
        cat "$CERT_DIR/samba.pem" 2>/dev/null || true
    } | short_hash
}

# samba_ldap URL ARGS...: an LDAP tool as Administrator against the DC.
samba_ldap() {
    local tool=$1 url=$2; shift 2
    "$tool" -x -o nettimeout=5 -H "$url" -D "$SAMBA_ADMIN_DN" -w "$SAMBA_PASSWORD" "$@"
}

samba_answers() {
    samba_ldap ldapsearch "ldap://$SAMBA_HOST" -LLL -l 5 -b "$SAMBA_BASE" -s base dn >/dev/null 2>&1
}

# samba_run DIR: start a DC from DIR and wait until it answers.
samba_run() {
    local d=$1 log pid i
    log="$d/log/samba.log"
    require_port_free samba "$SAMBA_HOST" 389
    require_port_free samba "$SAMBA_HOST" 636
    rm -f "$d/run/samba.pid"
    if ! samba -s "$(samba_conf "$d")" -M single </dev/null >>"$log" 2>&1 9>&-; then
        die_log "$log" "samba failed to start"
    fi
    for ((i = 0; i < READY_TIMEOUT * 10; i++)); do
        pid=$(pid_of "$d/run/samba.pid")
        if [[ -n $pid ]] && ! alive "$pid" samba; then
            die_log "$log" "samba exited during startup"
        fi
        if [[ -n $pid ]] && samba_answers; then
            return 0
        fi
        sleep 0.1
    done
    stop_pid "$(pid_of "$d/run/samba.pid")" samba
    die_log "$log" "samba did not answer on ldap://$SAMBA_HOST within ${READY_TIMEOUT} s"
}

samba_build_template() {
    local key=$1 final tmp log t0
    final="$SAMBA_TEMPLATE_ROOT/$key"
    tmp="$final.building.$$"
    t0=$(now_ms)
    say "samba: provisioning a template domain $SAMBA_REALM (10-30 s, once per Samba version and recipe) in $final"
    mkdir -p "$SAMBA_TEMPLATE_ROOT"
    chmod 700 "$SAMBA_TEMPLATE_ROOT"
    rm -rf "$tmp"
    mkdir -p "$tmp/etc" "$tmp/log"
    log="$tmp/log/samba.log"
    : >"$tmp/etc/blank.conf"
    local -a args
    mapfile -t args < <(samba_provision_args "$tmp")
    if ! samba-tool domain provision -s "$tmp/etc/blank.conf" "${args[@]}" \
        </dev/null >"$tmp/log/provision.log" 2>&1; then
        die_log "$tmp/log/provision.log" "samba-tool domain provision failed"
    fi
    rm -f "$tmp/etc/blank.conf"
    samba_write_conf "$tmp" template
    # Whatever happens, the template's DC does not outlive this script.
    CLEANUPS+=("stop_pid \"\$(pid_of '$tmp/run/samba.pid')\" samba")
    samba_run "$tmp"
    say "samba: extending the schema with targetAddress (as Exchange's schema preparation does)"
    samba_schema_ldif | samba_ldap ldapmodify "ldap://$SAMBA_HOST" >>"$log" 2>&1 ||
        die_log "$log" "samba: the schema extension failed"
    samba_layout_ldif | samba_ldap ldapmodify "ldap://$SAMBA_HOST" >>"$log" 2>&1 ||
        die_log "$log" "samba: creating the OUs / password policy failed"
    samba_contact_check "$log"
    stop_pid "$(pid_of "$tmp/run/samba.pid")" samba
    rm -rf "$tmp/run" "$tmp/cache" "$tmp/log"
    rm -rf "$final"
    mv "$tmp" "$final"
    # Keep only this template.
    find "$SAMBA_TEMPLATE_ROOT" -mindepth 1 -maxdepth 1 ! -name "$key" -exec rm -rf {} +
    say "samba: template ready in $(($(now_ms) - t0)) ms"
}

# samba_contact_check LOG: a contact with mail, proxyAddresses and targetAddress
# can be created in the stub OU, found by targetAddress, and deleted.
# Run once per template (a delete leaves a tombstone; instances start clean of it).
samba_contact_check() {
    local log=$1 dn url out
    dn="CN=coexist-testenv-selftest,$SAMBA_STUB_OU"
    url="ldap://$SAMBA_HOST"
    out=$(samba_ldap ldapadd "$url" 2>&1 <<EOF
dn: $dn
objectClass: contact
cn: coexist-testenv-selftest
displayName: coexist testenv self-test
mail: selftest@acmecorp.com
proxyAddresses: SMTP:selftest@acmecorp.com
proxyAddresses: smtp:selftest.alias@acmecorp.com
targetAddress: SMTP:selftest@gapps.acmecorp.com
EOF
    ) || die_log "$log" "samba: creating a contact with mail, proxyAddresses and targetAddress failed: $out"
    out=$(samba_ldap ldapsearch "$url" -LLL -b "$SAMBA_STUB_OU" "(targetAddress=SMTP:selftest@gapps.acmecorp.com)" targetAddress 2>&1) ||
        die_log "$log" "samba: searching the self-test contact failed: $out"
    [[ $out == *"targetAddress: SMTP:selftest@gapps.acmecorp.com"* ]] ||
        die_log "$log" "samba: the self-test contact has no targetAddress: $out"
    out=$(samba_ldap ldapdelete "$url" "$dn" 2>&1) ||
        die_log "$log" "samba: deleting the self-test contact failed: $out"
}

samba_selftest() {
    local log cls out
    log=$(samba_log)
    export LDAPTLS_CACERT="$CERT_DIR/ca.pem" LDAPTLS_REQCERT=demand
    samba_ldap ldapsearch "ldaps://$SAMBA_HOST" -LLL -l 10 -b "$SAMBA_BASE" -s base dn >/dev/null 2>&1 ||
        die_log "$log" "samba: LDAPS with the test CA failed"
    samba_ldap ldapsearch "ldap://$SAMBA_HOST" -ZZ -LLL -l 10 -b "$SAMBA_BASE" -s base dn >/dev/null 2>&1 ||
        die_log "$log" "samba: StartTLS with the test CA failed"
    unset LDAPTLS_CACERT LDAPTLS_REQCERT
    for cls in User Contact; do
        out=$(samba_ldap ldapsearch "ldap://$SAMBA_HOST" -LLL -l 10 -b "CN=$cls,CN=Schema,CN=Configuration,$SAMBA_BASE" \
            -s base mayContain 2>&1) || die_log "$log" "samba: reading the schema of $cls failed: $out"
        [[ $out == *"mayContain: targetAddress"* ]] || die_log "$log" "samba: class $cls may not hold targetAddress"
    done
    samba_ldap ldapsearch "ldap://$SAMBA_HOST" -LLL -l 10 -b "$SAMBA_STUB_OU" -s base dn >/dev/null 2>&1 ||
        die_log "$log" "samba: the stub OU $SAMBA_STUB_OU is missing"
}

samba_start_checked() {
    samba_run "$SAMBA_DIR"
    samba_selftest
}

samba_up() {
    local pid key tdir t0
    pid=$(pid_of "$(samba_pidfile)")
    if alive "$pid" samba; then
        if [[ $(cat "$SAMBA_DIR/recipe" 2>/dev/null || true) == "$(samba_recipe)" ]] && cert_ok samba && samba_answers; then
            say "samba: already running (pid $pid), reused"
            return 0
        fi
        say "samba: the running one (pid $pid) is stale or does not answer; rebuilding"
        stop_pid "$pid" samba
        rm -rf "$SAMBA_DIR"
    fi
    t0=$(now_ms)
    require_port_free samba "$SAMBA_HOST" 389
    local rc=1
    if [[ -d $SAMBA_DIR/private && $(cat "$SAMBA_DIR/recipe" 2>/dev/null || true) == "$(samba_recipe)" ]]; then
        say "samba: restarting on its existing data"
        rc=0
        attempt samba_start_checked || rc=$?
        if ((rc)); then
            say "samba: restarting on the existing data failed; starting afresh from the template"
            samba_stop
        fi
    fi
    if ((rc)); then
        key=$(samba_template_key)
        tdir="$SAMBA_TEMPLATE_ROOT/$key"
        [[ -d $tdir/private ]] || samba_build_template "$key"
        say "samba: copying the template domain to $SAMBA_DIR"
        rm -rf "$SAMBA_DIR"
        cp -a "$tdir" "$SAMBA_DIR"
        samba_write_conf "$SAMBA_DIR" instance
        samba_start_checked
    fi
    samba_recipe >"$SAMBA_DIR/recipe"
    say "samba: up in $(($(now_ms) - t0)) ms (pid $(pid_of "$(samba_pidfile)"), ldap://$SAMBA_HOST, ldaps://$SAMBA_HOST)"
}

samba_stop() {
    local pid; pid=$(pid_of "$(samba_pidfile)")
    if alive "$pid" samba; then
        say "samba: stopping (pid $pid)"
        stop_pid "$pid" samba
    fi
}

samba_running() { alive "$(pid_of "$(samba_pidfile)")" samba; }

samba_env() {
    env_line COEXIST_TEST_SAMBA_URL "ldap://$SAMBA_HOST:389"
    env_line COEXIST_TEST_SAMBA_LDAPS_URL "ldaps://$SAMBA_HOST:636"
    env_line COEXIST_TEST_SAMBA_BASE "$SAMBA_BASE"
    env_line COEXIST_TEST_SAMBA_BIND_DN "$SAMBA_ADMIN_DN"
    env_line COEXIST_TEST_SAMBA_PASSWORD "$SAMBA_PASSWORD"
    env_line COEXIST_TEST_SAMBA_STUB_OU "$SAMBA_STUB_OU"
}

# ---------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------
pg_bindir() {
    local d
    d=$(find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/initdb' 2>/dev/null | sort -V | tail -n1)
    [[ -n $d ]] || die "postgres: no /usr/lib/postgresql/*/bin/initdb (is the postgresql package installed?)"
    dirname "$d"
}
pg_data() { echo "$PG_DIR/data"; }
pg_log() { echo "$PG_DIR/postgres.log"; }
pg_url() { echo "postgres://$PG_USER:$POSTGRES_PASSWORD@$PG_HOST:$PG_PORT/$PG_DB"; }
as_postgres() { runuser -u postgres -- "$@"; }

pg_conf_text() {
    cat <<EOF

# coexist deploy/testenv.sh: loopback test server, durability not needed
listen_addresses = '$PG_HOST'
port = $PG_PORT
unix_socket_directories = '$PG_DIR/run'
max_connections = 300
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
}

pg_recipe() {
    { echo "$RECIPE_VERSION $POSTGRES_PASSWORD $PG_USER $PG_DB"; pg_bindir; pg_conf_text; } | short_hash
}

pg_running() {
    local pid; pid=$(pid_of "$(pg_data)/postmaster.pid")
    alive "$pid" postgres
}

pg_answers() {
    PGCONNECT_TIMEOUT=3 psql -X -q -t -A "$(pg_url)" -c 'select 1' 2>/dev/null | grep -qx 1
}

pg_build() {
    local bin t0
    bin=$(pg_bindir)
    t0=$(now_ms)
    say "postgres: initdb into $(pg_data) ($bin)"
    rm -rf "$PG_DIR"
    mkdir -p "$PG_DIR/run"
    chown -R postgres: "$PG_DIR"
    as_postgres test -x "$PG_DIR" || die "postgres: the postgres user cannot reach $PG_DIR; choose a COEXIST_TESTENV_DIR it can traverse"
    as_postgres "$bin/initdb" -D "$(pg_data)" -U postgres --auth-local=peer --auth-host=scram-sha-256 \
        -E UTF8 --no-locale --no-sync </dev/null >"$PG_DIR/initdb.log" 2>&1 ||
        die_log "$PG_DIR/initdb.log" "postgres: initdb failed"
    pg_conf_text >>"$(pg_data)/postgresql.conf"
    say "postgres: initdb done in $(($(now_ms) - t0)) ms"
}

pg_create_role() {
    as_postgres psql -X -q -v ON_ERROR_STOP=1 -h "$PG_DIR/run" -p "$PG_PORT" -U postgres -d postgres <<EOF >>"$(pg_log)" 2>&1
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_USER') THEN
    CREATE ROLE $PG_USER LOGIN CREATEDB PASSWORD '$POSTGRES_PASSWORD';
  END IF;
END \$\$;
SELECT 'CREATE DATABASE $PG_DB OWNER $PG_USER'
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$PG_DB')\gexec
EOF
}

pg_start() {
    local bin log
    bin=$(pg_bindir)
    log=$(pg_log)
    require_port_free postgres "$PG_HOST" "$PG_PORT"
    touch "$log"
    chown postgres: "$log"
    if ! as_postgres "$bin/pg_ctl" -D "$(pg_data)" -l "$log" -w -t "$READY_TIMEOUT" start </dev/null >"$PG_DIR/pg_ctl.out" 2>&1 9>&-; then
        cat "$PG_DIR/pg_ctl.out" >&2 || true
        die_log "$log" "postgres did not start"
    fi
    pg_create_role || die_log "$(pg_log)" "postgres: creating role/database $PG_USER failed"
    pg_answers || die_log "$(pg_log)" "postgres: cannot connect as $PG_USER over TCP"
}

pg_up() {
    local t0
    if pg_running; then
        if [[ $(cat "$PG_DIR/recipe" 2>/dev/null || true) == "$(pg_recipe)" ]] && pg_answers; then
            say "postgres: already running (pid $(pid_of "$(pg_data)/postmaster.pid")), reused"
            return 0
        fi
        say "postgres: the running one is stale or does not answer; rebuilding"
        pg_stop
        rm -rf "$PG_DIR"
    fi
    t0=$(now_ms)
    require_port_free postgres "$PG_HOST" "$PG_PORT"
    local rc=1
    if [[ -f $(pg_data)/PG_VERSION && $(cat "$PG_DIR/recipe" 2>/dev/null || true) == "$(pg_recipe)" ]]; then
        say "postgres: restarting on its existing data"
        rm -f "$(pg_data)/postmaster.pid"
        rc=0
        attempt pg_start || rc=$?
        if ((rc)); then
            say "postgres: restarting on the existing data failed; rebuilding from scratch"
            pg_stop
        fi
    fi
    if ((rc)); then
        pg_build
        pg_start
    fi
    pg_recipe >"$PG_DIR/recipe"
    say "postgres: up in $(($(now_ms) - t0)) ms (pid $(pid_of "$(pg_data)/postmaster.pid"), $PG_HOST:$PG_PORT)"
}

pg_stop() {
    local pid; pid=$(pid_of "$(pg_data)/postmaster.pid")
    if alive "$pid" postgres; then
        say "postgres: stopping (pid $pid)"
        as_postgres "$(pg_bindir)/pg_ctl" -D "$(pg_data)" -m fast -w -t 30 stop >/dev/null 2>&1 9>&- || true
        # pg_ctl returns once the pid file is gone; make sure the process is too.
        stop_pid "$pid" postgres
    fi
}

pg_env() {
    env_line COEXIST_TEST_POSTGRES_URL "$(pg_url)"
}

# ---------------------------------------------------------------------------
# DNS: NSD, authoritative only, on $DNS_HOST:$DNS_PORT
# ---------------------------------------------------------------------------
dns_conf() { echo "$DNS_DIR/nsd.conf"; }
dns_pidfile() { echo "$DNS_DIR/nsd.pid"; }
dns_log() { echo "$DNS_DIR/nsd.log"; }
dns_zones() { printf '%s.'"$DNS_DOMAIN"'\n' "${DNS_SHAPES[@]}"; echo google.com; }

dns_conf_text() {
    local zone
    cat <<EOF
# coexist deploy/testenv.sh: authoritative test server on loopback
server:
    ip-address: $DNS_HOST@$DNS_PORT
    port: $DNS_PORT
    do-ip6: no
    username: ""
    chroot: ""
    zonesdir: "$DNS_DIR/zones"
    database: ""
    zonelistfile: "$DNS_DIR/zone.list"
    xfrdfile: "$DNS_DIR/xfrd.state"
    xfrdir: "$DNS_DIR/xfr"
    pidfile: "$(dns_pidfile)"
    logfile: "$(dns_log)"
    server-count: 1
    verbosity: 1
    hide-version: yes
    refuse-any: yes

remote-control:
    control-enable: no
EOF
    for zone in $(dns_zones); do
        printf '\nzone:\n    name: "%s"\n    zonefile: "%s.zone"\n' "$zone" "$zone"
    done
}

# dns_soa ORIGIN: the zone's head.
dns_soa() {
    cat <<EOF
\$ORIGIN $1.
\$TTL 300
@ IN SOA ns.$DNS_DOMAIN. hostmaster.$DNS_DOMAIN. 1 3600 600 86400 300
@ IN NS ns.$DNS_DOMAIN.
EOF
}

# dns_shape_zone SHAPE: <shape>.acmecorp.test, the Google + LDAP organisation of
# google-coexistence.txt (MX on Google, the mail server's smart host mail.<shape>),
# correct or broken in one way each:
#   correct               every record right
#   mx-wrong              the shared domain's MX on the mail server, not Google
#   spf-missing           SPF without the mail server (a:mail.<shape>)
#   spf-too-many-lookups  SPF needing 11 DNS lookups (Google's include costs 4)
#   two-spf               two SPF records
#   dkim-missing          no google._domainkey
#   dmarc-absent          no _dmarc
#   routing-no-mx         the mail server's routing domain mithi.<shape> without MX
dns_shape_zone() {
    local shape=$1 origin="$1.$DNS_DOMAIN" n
    local spf="v=spf1 include:_spf.google.com a:mail.$origin ~all"
    dns_soa "$origin"
    if [[ $shape == mx-wrong ]]; then
        echo "@ IN MX 10 mail"
    else
        echo "@ IN MX 1 aspmx.l.google.com."
        echo "@ IN MX 5 alt1.aspmx.l.google.com."
    fi
    case $shape in
        spf-missing) echo "@ IN TXT \"v=spf1 include:_spf.google.com ~all\"" ;;
        spf-too-many-lookups)
            # Several character-strings (one holds 255 bytes at most), joined
            # as they are by receivers.
            printf '@ IN TXT "v=spf1 include:_spf.google.com a:mail.%s "' "$origin"
            for n in 1 2 3 4 5 6; do printf ' "include:relay%s.%s "' "$n" "$origin"; done
            printf ' "~all"\n'
            for n in 1 2 3 4 5 6; do echo "relay$n IN TXT \"v=spf1 ip4:198.51.100.$n ~all\""; done
            ;;
        two-spf)
            echo "@ IN TXT \"$spf\""
            echo "@ IN TXT \"v=spf1 a:mail.$origin -all\""
            ;;
        *) echo "@ IN TXT \"$spf\"" ;;
    esac
    echo "@ IN TXT \"google-site-verification=coexist-test\""
    if [[ $shape != dkim-missing ]]; then
        # Two character-strings, as providers publish long keys.
        echo "google._domainkey IN TXT \"v=DKIM1; k=rsa; p=${DNS_DKIM_KEY:0:200}\" \"${DNS_DKIM_KEY:200}\""
    fi
    if [[ $shape != dmarc-absent ]]; then
        echo "_dmarc IN TXT \"v=DMARC1; p=quarantine; rua=mailto:dmarc@$origin\""
    fi
    echo "gapps IN MX 1 aspmx.l.google.com."
    echo "gapps IN MX 5 alt1.aspmx.l.google.com."
    if [[ $shape == routing-no-mx ]]; then
        echo "mithi IN A 192.0.2.25"
    else
        echo "mithi IN MX 10 mail"
    fi
    echo "mail IN A 192.0.2.25"
}

# dns_google_zone: the stand-in for google.com: Google's SPF include and its
# three netblock records (as Google publishes them: 4 lookups in all), and
# the MX hosts' addresses.
dns_google_zone() {
    dns_soa google.com
    cat <<'EOF'
_spf IN TXT "v=spf1 include:_netblocks.google.com include:_netblocks2.google.com include:_netblocks3.google.com ~all"
_netblocks IN TXT "v=spf1 ip4:35.190.247.0/24 ip4:64.233.160.0/19 ip4:66.102.0.0/20 ~all"
_netblocks2 IN TXT "v=spf1 ip6:2001:4860:4000::/36 ip6:2404:6800:4000::/36 ~all"
_netblocks3 IN TXT "v=spf1 ip4:172.217.0.0/19 ip4:172.217.32.0/20 ~all"
smtp IN A 192.0.2.10
aspmx.l IN A 192.0.2.11
alt1.aspmx.l IN A 192.0.2.12
EOF
}

dns_zone_text() {
    if [[ $1 == google.com ]]; then dns_google_zone; else dns_shape_zone "${1%".$DNS_DOMAIN"}"; fi
}

dns_recipe() {
    local zone
    {
        echo "$RECIPE_VERSION $DNS_HOST $DNS_PORT"
        dns_conf_text
        for zone in $(dns_zones); do dns_zone_text "$zone"; done
        command -v nsd || true
    } | short_hash
}

dns_running() { alive "$(pid_of "$(dns_pidfile)")" nsd; }

# dns_dig ARGS...: one query to the test server, short output.
dns_dig() { dig +time=2 +tries=1 +short -p "$DNS_PORT" "@$DNS_HOST" "$@" 2>/dev/null; }

dns_answers() { dns_dig SOA "correct.$DNS_DOMAIN" | grep -q "hostmaster.$DNS_DOMAIN"; }

dns_build() {
    local zone t0
    t0=$(now_ms)
    say "dns: writing nsd.conf and its zones in $DNS_DIR"
    rm -rf "$DNS_DIR"
    mkdir -p "$DNS_DIR/zones" "$DNS_DIR/xfr"
    dns_conf_text >"$(dns_conf)"
    for zone in $(dns_zones); do
        dns_zone_text "$zone" >"$DNS_DIR/zones/$zone.zone"
        nsd-checkzone "$zone" "$DNS_DIR/zones/$zone.zone" >>"$(dns_log)" 2>&1 ||
            die_log "$(dns_log)" "dns: the zone $zone does not load"
    done
    nsd-checkconf "$(dns_conf)" >>"$(dns_log)" 2>&1 || die_log "$(dns_log)" "dns: nsd.conf is refused"
    say "dns: built in $(($(now_ms) - t0)) ms"
}

dns_start() {
    local log pid n
    log=$(dns_log)
    require_port_free dns "$DNS_HOST" "$DNS_PORT"
    rm -f "$(dns_pidfile)"
    # Foreground (-d), detached with setsid, no inherited descriptors (not our lock).
    setsid nsd -d -c "$(dns_conf)" </dev/null >>"$log" 2>&1 9>&- &
    pid=$!
    for ((n = 0; n < READY_TIMEOUT * 10; n++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            die_log "$log" "dns: nsd exited during startup"
        fi
        if dns_answers; then
            return 0
        fi
        sleep 0.1
    done
    kill -TERM "$pid" 2>/dev/null || true
    die_log "$log" "dns: nsd did not answer on $DNS_HOST:$DNS_PORT within ${READY_TIMEOUT} s"
}

# Every zone answers, over UDP and TCP, and the shapes differ as they should.
dns_selftest() {
    local log zone out
    log=$(dns_log)
    for zone in $(dns_zones); do
        dns_dig SOA "$zone" | grep -q "hostmaster.$DNS_DOMAIN" || die_log "$log" "dns: the zone $zone does not answer"
    done
    out=$(dns_dig +tcp TXT "_spf.google.com")
    [[ $out == *"include:_netblocks.google.com"* ]] || die_log "$log" "dns: _spf.google.com over TCP: $out"
    out=$(dns_dig TXT "two-spf.$DNS_DOMAIN" | grep -c 'v=spf1' || true)
    [[ $out == 2 ]] || die_log "$log" "dns: two-spf.$DNS_DOMAIN has $out SPF records, not 2"
    out=$(dns_dig MX "mx-wrong.$DNS_DOMAIN")
    [[ $out == "10 mail.mx-wrong.$DNS_DOMAIN." ]] || die_log "$log" "dns: the MX of mx-wrong.$DNS_DOMAIN is $out"
    out=$(dns_dig TXT "google._domainkey.correct.$DNS_DOMAIN")
    [[ $(tr -d '" \n' <<<"$out") == *"p=$DNS_DKIM_KEY" ]] || die_log "$log" "dns: the DKIM key of correct.$DNS_DOMAIN is $out"
}

dns_start_checked() {
    dns_start
    dns_selftest
}

dns_up() {
    local t0 pid
    pid=$(pid_of "$(dns_pidfile)")
    if alive "$pid" nsd; then
        if [[ $(cat "$DNS_DIR/recipe" 2>/dev/null || true) == "$(dns_recipe)" ]] && dns_answers; then
            say "dns: already running (pid $pid), reused"
            return 0
        fi
        say "dns: the running one (pid $pid) is stale or does not answer; rebuilding"
        stop_pid "$pid" nsd
    fi
    t0=$(now_ms)
    # The zones are small and written in milliseconds: always afresh.
    dns_build
    dns_start_checked
    dns_recipe >"$DNS_DIR/recipe"
    say "dns: up in $(($(now_ms) - t0)) ms (pid $(pid_of "$(dns_pidfile)"), $DNS_HOST:$DNS_PORT)"
}

dns_stop() {
    local pid; pid=$(pid_of "$(dns_pidfile)")
    if alive "$pid" nsd; then
        say "dns: stopping (pid $pid)"
        stop_pid "$pid" nsd
    fi
}

dns_env() {
    env_line COEXIST_TEST_DNS_NAMESERVER "$DNS_HOST:$DNS_PORT"
    env_line COEXIST_TEST_DNS_DOMAIN "$DNS_DOMAIN"
    env_line COEXIST_TEST_DNS_LOG "$(dns_log)"
}

# ---------------------------------------------------------------------------
# Env file and commands
# ---------------------------------------------------------------------------
server_running() {
    case $1 in
        slapd | slapd-qmail) slapd_running "$1" ;;
        samba) samba_running ;;
        postgres) pg_running ;;
        dns) dns_running ;;
    esac
}

# tools_env: the test programs of TOOL_PACKAGES that are installed.
tools_env() {
    local path
    if path=$(command -v promtool); then env_line COEXIST_TEST_PROMTOOL "$path"; fi
    if path=$(command -v chromium); then env_line COEXIST_TEST_CHROMIUM "$path"; fi
    return 0
}

write_env() {
    [[ -d $STATE_DIR ]] || return 0
    local tmp="$ENV_FILE.tmp.$$" any=0 s
    {
        echo "# coexist test servers, written by deploy/testenv.sh on $(date -u +%Y-%m-%dT%H:%M:%SZ)"
        env_line COEXIST_TESTENV_DIR "$STATE_DIR"
        [[ -s $CERT_DIR/ca.pem ]] && env_line COEXIST_TEST_CA_FILE "$CERT_DIR/ca.pem"
        for s in "${SLAPD_INSTANCES[@]}"; do
            if slapd_running "$s"; then slapd_env "$s"; any=1; fi
        done
        if samba_running; then samba_env; any=1; fi
        if pg_running; then pg_env; any=1; fi
        if dns_running; then dns_env; any=1; fi
        tools_env
    } >"$tmp"
    if ((any)); then
        chmod 644 "$tmp"
        mv -f "$tmp" "$ENV_FILE"
    else
        rm -f "$tmp" "$ENV_FILE"
    fi
}

parse_servers() {
    SERVERS=()
    local s
    if (($# == 0)); then
        SERVERS=("${ALL_SERVERS[@]}")
        return
    fi
    for s in "$@"; do
        case $s in
            slapd | slapd-qmail | samba) SERVERS+=("$s") ;;
            qmail) SERVERS+=(slapd-qmail) ;;
            postgres | postgresql | pg) SERVERS+=(postgres) ;;
            dns | nsd) SERVERS+=(dns) ;;
            *) die "unknown server '$s' (expected: slapd, slapd-qmail, samba, postgres, dns)" ;;
        esac
    done
}

cmd_up() {
    local t0 s
    t0=$(now_ms)
    parse_servers "$@"
    require_root
    take_lock
    ensure_packages "${SERVERS[@]}"
    id "$SLAPD_USER" >/dev/null 2>&1 || [[ " ${SERVERS[*]} " != *" slapd "* && " ${SERVERS[*]} " != *" slapd-qmail "* ]] ||
        die "the $SLAPD_USER user is missing (the slapd package creates it)"
    make_state_dir
    ensure_certs
    for s in "${SERVERS[@]}"; do
        case $s in
            slapd | slapd-qmail) slapd_up "$s" ;;
            samba) samba_up ;;
            postgres) pg_up ;;
            dns) dns_up ;;
        esac
    done
    write_env
    say "ready in $(($(now_ms) - t0)) ms: source $ENV_FILE"
}

cmd_stop() {
    local s
    parse_servers "$@"
    require_root
    take_lock
    for s in "${SERVERS[@]}"; do
        case $s in
            slapd | slapd-qmail) slapd_stop "$s" ;;
            samba) samba_stop ;;
            postgres) pg_stop ;;
            dns) dns_stop ;;
        esac
    done
    write_env
}

cmd_down() {
    local s all=1
    (($# == 0)) || all=0
    parse_servers "$@"
    require_root
    take_lock
    for s in "${SERVERS[@]}"; do
        case $s in
            slapd | slapd-qmail) slapd_stop "$s"; rm -rf "${SLAPD[$s.dir]}" ;;
            samba) samba_stop; rm -rf "$SAMBA_DIR" ;;
            postgres) pg_stop; rm -rf "$PG_DIR" ;;
            dns) dns_stop; rm -rf "$DNS_DIR" ;;
        esac
    done
    local running=0 left=0
    for s in "${ALL_SERVERS[@]}"; do
        if server_running "$s"; then running=1; fi
    done
    for s in "${SLAPD_INSTANCES[@]}"; do
        if [[ -d ${SLAPD[$s.dir]} ]]; then left=1; fi
    done
    if [[ -d $SAMBA_DIR || -d $PG_DIR || -d $DNS_DIR ]]; then left=1; fi
    if ((!running)) && { ((all)) || ((!left)); }; then
        rm -rf "$STATE_DIR"
        say "all stopped; removed $STATE_DIR"
    elif ((all)); then
        die "something still runs under $STATE_DIR; not removing it"
    else
        write_env
    fi
}

cmd_env() {
    [[ -s $ENV_FILE ]] || die "no $ENV_FILE: run 'deploy/testenv.sh up' first"
    cat "$ENV_FILE"
}

cmd_status() {
    local s rc=0
    for s in "${ALL_SERVERS[@]}"; do
        if server_running "$s"; then
            printf '%-12s running\n' "$s"
        else
            printf '%-12s stopped\n' "$s"
            rc=3
        fi
    done
    return "$rc"
}

usage() {
    sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

main() {
    local cmd=${1:-}
    (($#)) && shift
    case $cmd in
        up) cmd_up "$@" ;;
        stop) cmd_stop "$@" ;;
        down) cmd_down "$@" ;;
        env) cmd_env ;;
        status) cmd_status || exit $? ;;
        -h | --help | help) usage ;;
        *) usage >&2; exit 2 ;;
    esac
}

main "$@"
