# Source this file: it puts a Node.js >= 22.12 first on PATH, installing Node 24 from the npm
# registry into ${TUSBOX_NODE_DIR:-$HOME/.cache/tusbox-node} when the system Node is older.
# Usage: source scripts/use-node.sh
#
# The install goes to a temporary folder beside TUSBOX_NODE_DIR, is checked with `node --version`,
# then renamed into place (one rename(2): atomic). A broken or partial install is replaced, never
# used, and shells that source this at the same time each install their own copy: the first
# rename wins, the others use it and remove theirs.

tusbox_node_ok() {
  "${1:-node}" -e 'const [a,b]=process.versions.node.split(".").map(Number);process.exit(a>22||(a===22&&b>=12)?0:1)' >/dev/null 2>&1
}

tusbox_install_node() {
  tusbox_tmp="$(mktemp -d "$TUSBOX_NODE_DIR.tmp.XXXXXX")" || return 1
  echo "Node $(node --version 2>/dev/null || echo 'is missing'); installing node@24 into $TUSBOX_NODE_DIR" >&2
  if ! npm install --silent --no-save --prefix "$tusbox_tmp" node@24 >&2 ||
    ! tusbox_node_ok "$tusbox_tmp/node_modules/.bin/node"; then
    rm -rf "$tusbox_tmp"
    return 1
  fi
  # A broken install in the way is moved aside first; a good one another shell just put there wins.
  if [ -e "$TUSBOX_NODE_DIR" ] && ! tusbox_node_ok "$TUSBOX_NODE_DIR/node_modules/.bin/node"; then
    mv "$TUSBOX_NODE_DIR" "$tusbox_tmp.broken" 2>/dev/null
  fi
  "$tusbox_tmp/node_modules/.bin/node" -e 'require("node:fs").renameSync(process.argv[1], process.argv[2])' \
    "$tusbox_tmp" "$TUSBOX_NODE_DIR" 2>/dev/null
  rm -rf "$tusbox_tmp" "$tusbox_tmp.broken"
  tusbox_node_ok "$TUSBOX_NODE_DIR/node_modules/.bin/node"
}

if ! tusbox_node_ok; then
  # npm's global config (a cafile, say) is found next to the node that runs it; keep the system
  # npm's cafile once a different node comes first on PATH.
  if [ -z "${npm_config_cafile:-}" ] && command -v npm >/dev/null 2>&1; then
    tusbox_cafile="$(npm config get cafile 2>/dev/null || true)"
    case "$tusbox_cafile" in ''|null|undefined) ;; *) export npm_config_cafile="$tusbox_cafile" ;; esac
  fi
  TUSBOX_NODE_DIR="${TUSBOX_NODE_DIR:-$HOME/.cache/tusbox-node}"
  mkdir -p "$(dirname "$TUSBOX_NODE_DIR")"
  if tusbox_node_ok "$TUSBOX_NODE_DIR/node_modules/.bin/node" || tusbox_install_node; then
    export PATH="$TUSBOX_NODE_DIR/node_modules/.bin:$PATH"
  fi
  tusbox_node_ok || { echo "could not get Node.js >= 22.12 (the npm install of node@24 into $TUSBOX_NODE_DIR failed; see above)" >&2; return 1 2>/dev/null || exit 1; }
fi
echo "using Node $(node --version) and npm $(npm --version)" >&2
