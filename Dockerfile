# syntax=docker/dockerfile:1
# apigw-syncer image: the sidecar only (dist/sidecar + production dependencies) on Node 24 LTS.
#
# Base: node:24-alpine. Why not distroless nodejs24: there node lives at /nodejs/bin/node and
# is not on PATH, so the documented `kubectl exec <pod> -c syncer -- node dist/sidecar/main.js
# peers` would not work, and there is no shell at all for an operator's first look. Alpine is
# the official Node build (~50 MB), has no native-addon concerns here (the production
# dependencies are pure JavaScript), and its npm/yarn/corepack are removed below so the
# runtime holds node, the app and busybox (whose `sleep` the chart's preStop hook runs).
# test/runtime-image.test.ts reproduces the runtime stage without Docker and starts the app
# with the ENTRYPOINT parsed from this file.
#
# Pinning the base (releases): NODE_IMAGE names it, NODE_DIGEST pins it. Without a digest the
# tag is pulled as it is that day (local builds); a release resolves the tag to its digest once
# and builds with it, so the image is reproducible and records exactly what it runs on:
#   digest=$(docker buildx imagetools inspect docker.io/library/node:24-alpine \
#            --format '{{json .Manifest.Digest}}' | tr -d '"')
#   docker build --build-arg NODE_DIGEST="$digest" -t registry.example.com/apigw-syncer:0.1.0 .
# Keep the digest in the release pipeline's configuration (one line to review), and update it
# on purpose: for each release, and whenever Node 24 or Alpine publish security fixes (the tag
# moves; the digest does not). The digest is the multi-platform index's, valid for every
# architecture. The runtime image carries both as OCI labels (org.opencontainers.image.base.*).
ARG NODE_IMAGE=docker.io/library/node:24-alpine
ARG NODE_DIGEST=

# ---- build: all dependencies, compile the sidecar only (tsconfig.build.json) ----
FROM ${NODE_IMAGE}${NODE_DIGEST:+@}${NODE_DIGEST} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY sidecar ./sidecar
RUN npx tsc -p tsconfig.build.json

# ---- deps: production dependencies only, in a stage that still has npm ----
FROM ${NODE_IMAGE}${NODE_DIGEST:+@}${NODE_DIGEST} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

# ---- runtime ----
FROM ${NODE_IMAGE}${NODE_DIGEST:+@}${NODE_DIGEST} AS runtime
ARG NODE_IMAGE
ARG NODE_DIGEST
LABEL org.opencontainers.image.base.name="${NODE_IMAGE}" \
      org.opencontainers.image.base.digest="${NODE_DIGEST}"
# npm, npx, yarn and corepack are not needed to run and only add attack surface.
RUN rm -rf /usr/local/lib/node_modules /usr/local/bin/npm /usr/local/bin/npx \
      /usr/local/bin/corepack /usr/local/bin/yarn /usr/local/bin/yarnpkg /opt/yarn-* \
      /root/.npm /tmp/*
ENV NODE_ENV=production
WORKDIR /app
# Owned by root and read-only for the app user: the container runs with
# readOnlyRootFilesystem and never writes here.
# package.json is needed at run time: its "type": "module" makes node load dist/ as ESM.
COPY package.json ./
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /src/dist/sidecar ./dist/sidecar
# Numeric UID:GID (the image's "node" user) so the kubelet can verify runAsNonRoot; OpenShift
# replaces it with an arbitrary UID in group 0, which can still read the world-readable files.
USER 1000:1000
EXPOSE 9090
# Exec form: node is PID 1 and receives SIGTERM itself; the sidecar handles it and exits 0.
# --max-semi-space-size=4 (MiB): V8's young generation otherwise grows to 16 MiB semi-spaces
# under a burst of checks and stays resident; 4 keeps a burst's peak RSS ~20-30 MB lower for a
# few more (cheap) scavenges (measured with npm run bench). The old generation's cap comes from
# the container's memory limit, through NODE_OPTIONS set by the chart.
ENTRYPOINT ["node", "--max-semi-space-size=4", "dist/sidecar/main.js"]
