// Plain JavaScript that any Node.js parses, imported first by bin/tusbox.js: an old Node says what
// to run instead of failing on the first TypeScript file.
const [major = 0, minor = 0] = process.versions.node.split('.').map(Number)
if (major < 22 || (major === 22 && minor < 12)) {
  process.stderr.write(
    `tusbox needs Node.js 22.12 or newer; this shell runs ${process.version}.\n` +
      'In this checkout, run `source scripts/use-node.sh` (it puts Node 24 first on PATH for this shell, installing it once), then the same command again.\n' +
      'Or install Node 24 yourself (nvm install 24).\n',
  )
  process.exit(1)
}
