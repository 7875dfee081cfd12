# Source this file: it puts a Node.js >= 22.12 first on PATH, installing Node 24 from the npm
# registry into ${TUSBOX_NODE_DIR:-$HOME/.cache/tusbox-node} when the system Node is older.
# Usage: source scripts/use-node.sh

tusbox_node_ok() {
  command -v node >/dev/null 2>&1 &&
    node -e 'const [a,b]=process.versions.node.split(".").map(Number);process.exit(a>22||(a===22&&b>=12)?0:1)'
}

if ! tusbox_node_ok; then
  # npm's global config (a cafile, say) is found next to the node that runs it; keep the system
  # npm's cafile once a different node comes first on PATH.
  if [ -z "${npm_config_cafile:-}" ] && command -v npm >/dev/null 2>&1; then
    tusbox_cafile="$(npm config get cafile 2>/dev/null || true)"
    case "$tusbox_cafile" in ''|null|undefined) ;; *) export npm_config_cafile="$tusbox_cafile" ;; esac
  fi
  TUSBOX_NODE_DIR="${TUSBOX_NODE_DIR:-$HOME/.cache/tusbox-node}"
  if [ ! -x "$TUSBOX_NODE_DIR/node_modules/.bin/node" ]; then
    echo "Node $(node --version 2>/dev/null || echo 'is missing'); installing node@24 into $TUSBOX_NODE_DIR" >&2
    npm install --silent --no-save --prefix "$TUSBOX_NODE_DIR" node@24 >&2
  fi
  export PATH="$TUSBOX_NODE_DIR/node_modules/.bin:$PATH"
  tusbox_node_ok || { echo "could not get Node.js >= 22.12" >&2; return 1 2>/dev/null || exit 1; }
fi
echo "using Node $(node --version) and npm $(npm --version)" >&2
