# pinwatch %post: the system user (/usr/lib/sysusers.d/pinwatch.conf), and
# systemd told about the unit when systemd runs. The service is not enabled:
# pin your databases in /etc/pinwatch/pinwatch.toml first.
if command -v systemd-sysusers >/dev/null 2>&1; then
    systemd-sysusers pinwatch.conf || :
elif ! getent passwd pinwatch >/dev/null; then
    useradd --system --user-group --home-dir /nonexistent --no-create-home \
        --shell /sbin/nologin --comment "pinwatch daemon" pinwatch || :
fi
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
