# chat-server in a container.
#
#   docker build -t chatserver .
#   docker run -d -p 4000:4000 -p 4001:4001 -p 4004:4004 chatserver
#
# Build stage: the same command as a manual build (README). Both stages are Debian 12
# (bookworm), so the binary runs against the glibc it was linked with.
ARG RUST_VERSION=1.95
FROM rust:${RUST_VERSION}-slim-bookworm AS builder
WORKDIR /src
COPY . .
RUN cargo build --release --locked

# Runtime stage: the binary and the shipped config, run as an unprivileged user.
FROM debian:bookworm-slim
RUN useradd --system --user-group --uid 10001 --no-create-home \
        --home-dir /app/data --shell /usr/sbin/nologin chat \
    && mkdir -p /app/data \
    && chown chat:chat /app/data
COPY --from=builder /src/target/release/chat-server /app/chat-server
COPY config.json /app/config.json
# config.json's log_file is relative ("chat-server.log"), so it resolves in the working
# directory: the log is /app/data/chat-server.log, which the chat user can write. Mount a
# volume there to keep it: -v chatlog:/app/data
WORKDIR /app/data
USER chat
EXPOSE 4000 4001 4004
ENTRYPOINT ["/app/chat-server"]
CMD ["-c", "/app/config.json"]
