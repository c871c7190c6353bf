# The Kiln app: one image for the API (default command) and the worker (`node dist/worker/main.js`).
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# `npm install`, not `npm ci`: see the README (the lock lacks other platforms' optional binaries).
RUN npm install --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=3000
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# The web page's script is bundled from its TypeScript source on first request.
COPY --from=build /app/src ./src
USER node
EXPOSE 3000
# No HEALTHCHECK here: the worker runs from this image too and serves no HTTP; compose checks the API.
CMD ["node", "dist/api/main.js"]
