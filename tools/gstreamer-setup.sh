#!/bin/sh
# GStreamer for `make test` (the edgeface element, the appsink source, the RTSP tests), from the system's packages:
# PyGObject and GStreamer's Python overrides come from apt, not pip (the overrides that map buffers as writable
# memory ship only with python3-gst-1.0). Installed with apt where this runs as root with apt-get (CI), quietly,
# and nothing is done when they are present; elsewhere the GStreamer tests skip with a one-line reason.
# Then the system's `gi` is linked into the venv when it is built for the venv's Python (same ABI suffix);
# a venv that already imports gi (--system-site-packages, as on a Jetson) is left alone.
set -u
PY="$1"
PACKAGES="python3-gi python3-gst-1.0 gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0 gir1.2-gst-rtsp-server-1.0
 gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
 gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-python3-plugin-loader"

missing=""
for p in $PACKAGES; do
	status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)
	[ "$status" = installed ] || missing="$missing $p"
done
if [ -n "$missing" ]; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		echo "installing GStreamer system packages with apt (once):$missing"
		log=$(mktemp)
		export DEBIAN_FRONTEND=noninteractive
		# shellcheck disable=SC2086
		if ! { apt-get install -y -qq --no-install-recommends $missing >"$log" 2>&1 \
			|| { apt-get update -qq >>"$log" 2>&1 && apt-get install -y -qq --no-install-recommends $missing >>"$log" 2>&1; }; }; then
			echo "apt could not install them (GStreamer tests will skip); last lines of its log:"
			tail -n 3 "$log"
		fi
		rm -f "$log"
	elif command -v dpkg-query >/dev/null 2>&1; then
		echo "GStreamer packages missing and no root apt (GStreamer tests will skip):$missing"
	fi
fi

"$PY" -c 'import gi' 2>/dev/null && exit 0
[ -x /usr/bin/python3 ] || exit 0
gi_dir=$(/usr/bin/python3 -c 'import gi, os; print(os.path.dirname(gi.__file__))' 2>/dev/null) || exit 0
system_abi=$(/usr/bin/python3 -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
venv_abi=$("$PY" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
if [ "$system_abi" = "$venv_abi" ]; then
	ln -sfn "$gi_dir" "$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/gi"
else
	echo "the system's PyGObject is built for ${system_abi}, this venv's Python for ${venv_abi}: GStreamer tests will" \
		"skip (make the venv from /usr/bin/python3 to run them)"
fi
