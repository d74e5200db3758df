# syntax=docker/dockerfile:1
# apigw-syncer image: the sidecar only — its bundle (esbuild: the program and the dependency code
# it runs, no node_modules) — on Node 26 LTS.
#
# Base: node:26-alpine. Why not distroless nodejs26: there node lives at /nodejs/bin/node and
# is not on PATH, so the documented `kubectl exec <pod> -c syncer -- node apigw-syncer.mjs
# peers` would not work, and there is no shell at all for an operator's first look. Alpine is
# the official Node build (~50 MB), has no native-addon concerns here (the bundle is pure
# JavaScript), and its npm/yarn/corepack are removed below so the runtime holds node, the app
# and busybox (whose `sleep` the chart's preStop hook runs).
# test/runtime-image.test.ts reproduces the runtime stage without Docker and starts the app
# with the ENTRYPOINT parsed from this file.
#
# Pinning the base (releases): NODE_IMAGE names it, NODE_DIGEST pins it. Without a digest the
# tag is pulled as it is that day (local builds); a release resolves the tag to its digest once
# and builds with it, so the image is reproducible and records exactly what it runs on:
#   digest=$(docker buildx imagetools inspect docker.io/library/node:26-alpine \
#            --format '{{json .Manifest.Digest}}' | tr -d '"')
#   docker build --build-arg NODE_DIGEST="$digest" -t registry.example.com/apigw-syncer:0.1.0 .
# Keep the digest in the release pipeline's configuration (one line to review), and update it
# on purpose: for each release, and whenever Node 26 or Alpine publish security fixes (the tag
# moves; the digest does not). The digest is the multi-platform index's, valid for every
# architecture. The runtime image carries both as OCI labels (org.opencontainers.image.base.*).
ARG NODE_IMAGE=docker.io/library/node:26-alpine
ARG NODE_DIGEST=

# ---- build: all dependencies; type-check the sidecar (tsconfig.build.json), then bundle it ----
FROM ${NODE_IMAGE}${NODE_DIGEST:+@}${NODE_DIGEST} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY sidecar ./sidecar
RUN npx tsc -p tsconfig.build.json && npm run bundle

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
# readOnlyRootFilesystem and never writes here. The bundle is all the app is: apigw-syncer.mjs,
# the chunk it imports, and the chunk only a kubeconfig outside a cluster loads (the .mjs
# extension makes node load them as ESM without a package.json).
COPY --from=build /src/dist/bundle ./
# Numeric UID:GID (the image's "node" user) so the kubelet can verify runAsNonRoot; OpenShift
# replaces it with an arbitrary UID in group 0, which can still read the world-readable files.
USER 1000:1000
EXPOSE 9090
# Exec form: node is PID 1 and receives SIGTERM itself; the sidecar handles it and exits 0.
# --max-semi-space-size=4 (MiB): V8's young generation otherwise grows to 16 MiB semi-spaces under
# a burst of checks and the pages stay resident; 4 keeps a burst's peak ~10 MB lower at no
# measurable CPU cost per check (a fixed 1 MiB cost ~25% more CPU at 9 peers saturated; npm run
# bench). V8 reads it once, when the heap is set up, so it is on the command line: `npm start`
# passes the same (test/runtime-image.test.ts holds the two equal). The old generation's cap
# comes from the container's memory limit, through NODE_OPTIONS set by the chart.
ENTRYPOINT ["node", "--max-semi-space-size=4", "apigw-syncer.mjs"]
