# Shared by the stand-ins' request handlers (sourced, busybox ash): read one HTTP/1.x request from stdin,
# answer it on stdout, log one line per request to stderr (the entrypoints point stderr at the container's
# stdout, so `kubectl logs` shows it). One request per connection: every answer says Connection: close.

set -f
CR=$(printf '\r')
REQ_METHOD="" REQ_TARGET="" REQ_PATH="" REQ_QUERY="" REQ_VERSION="" REQ_HOST="" REQ_LENGTH=0
REQ_HEADERS=""

# http_read_request: parse the request line and headers (10 s budget per line, so a silent client cannot
# hold a handler). The end-to-end headers (not Host/Connection/Keep-Alive/Proxy-*) go to the file
# $REQ_HEADERS, CRLF-terminated, for a proxy to pass on. Returns 1 on an empty or malformed request.
http_read_request() {
    REQ_HEADERS=$(mktemp /tmp/req.XXXXXX)
    IFS= read -r -t 10 line || return 1
    line=${line%"$CR"}
    set -- $line
    [ $# -eq 3 ] || return 1
    REQ_METHOD=$1 REQ_TARGET=$2 REQ_VERSION=$3
    REQ_PATH=${REQ_TARGET%%\?*}
    case "$REQ_TARGET" in *\?*) REQ_QUERY=${REQ_TARGET#*\?} ;; esac
    while IFS= read -r -t 10 h; do
        h=${h%"$CR"}
        [ -z "$h" ] && return 0
        value=${h#*:}
        value=${value# }
        case "$h" in
            [Hh][Oo][Ss][Tt]:*) REQ_HOST=$value ;;
            [Cc][Oo][Nn][Tt][Ee][Nn][Tt]-[Ll][Ee][Nn][Gg][Tt][Hh]:*)
                REQ_LENGTH=$value
                printf '%s\r\n' "$h" >> "$REQ_HEADERS" ;;
            [Cc][Oo][Nn][Nn][Ee][Cc][Tt][Ii][Oo][Nn]:*|[Kk][Ee][Ee][Pp]-[Aa][Ll][Ii][Vv][Ee]:*|[Pp][Rr][Oo][Xx][Yy]-*) ;;
            *) printf '%s\r\n' "$h" >> "$REQ_HEADERS" ;;
        esac
    done
    return 1
}

# http_log STATUS BYTES [NOTE]: the access-log line (NOTE: e.g. the upstream a gateway chose).
http_log() {
    printf '%s %s %s "%s %s %s" %s %s%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${SB_APP:-standin}" \
        "${SOCAT_PEERADDR:--}" "${REQ_METHOD:--}" "${REQ_TARGET:--}" "${REQ_VERSION:--}" "$1" "$2" \
        "${3:+ $3}" >&2
}

# http_respond STATUS REASON CONTENT-TYPE BODY [EXTRA-HEADER-LINES [LOG-NOTE]]: a complete response, then
# the log line.
http_respond() {
    printf 'HTTP/1.1 %s %s\r\nContent-Type: %s\r\nContent-Length: %s\r\nConnection: close\r\n%s\r\n' \
        "$1" "$2" "$3" "${#4}" "${5:-}"
    [ "$REQ_METHOD" = HEAD ] || printf '%s' "$4"
    http_log "$1" "${#4}" "${6:-}"
}

# json_escape TEXT: TEXT as the inside of a JSON string (backslash, quote, control characters).
json_escape() {
    printf '%s' "$1" | tr -d '\000-\010\013-\037' | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/\t/\\t/g' \
        | sed -e ':a' -e 'N' -e '$!ba' -e 's/\n/\\n/g'
}

http_cleanup() {
    [ -n "$REQ_HEADERS" ] && rm -f "$REQ_HEADERS"
}
