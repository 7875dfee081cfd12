# syntax=docker/dockerfile:1
# tusbox: Node runs the TypeScript sources directly (type stripping), so there is no build step;
# the first stage only installs production dependencies.
ARG NODE_IMAGE=node:24-bookworm-slim

FROM ${NODE_IMAGE} AS dependencies
WORKDIR /app
COPY package.json package-lock.json ./
# --omit=optional leaves out the embedded PostgreSQL binaries: in a container DATABASE_URL is set.
# --ignore-scripts: no production dependency needs an install script.
RUN npm ci --omit=dev --omit=optional --ignore-scripts && npm cache clean --force

FROM ${NODE_IMAGE}
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=1080
WORKDIR /app
COPY --from=dependencies /app/node_modules ./node_modules
COPY package.json ./
COPY bin ./bin
COPY src ./src
COPY migrations ./migrations
# The file store's default directory, writable by the unprivileged user.
RUN mkdir -p /app/.data/files && chown -R node:node /app/.data
USER node
EXPOSE 1080
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 1080) + '/readyz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "bin/tusbox.js"]
CMD ["serve"]
