# weightbridged in two stages: build and test on a pinned Debian, then a
# runtime image with only the shared libraries the binaries need.
FROM debian:bookworm-20241111-slim AS build
WORKDIR /src
COPY . .
# deps.sh installs the build packages (it is also what `make run` uses).
RUN apt-get update -qq && scripts/deps.sh && rm -rf /var/lib/apt/lists/*
RUN make -j"$(nproc)" && make check
RUN make install DESTDIR=/staging PREFIX=/usr/local

FROM debian:bookworm-20241111-slim
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends \
      libarchive13 libjansson4 libhdf5-103-1 libmicrohttpd12 libssl3 libsystemd0 libisal2 zlib1g \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/weightbridged --shell /usr/sbin/nologin weightbridge \
 && install -d -o weightbridge -g weightbridge -m 0700 /var/lib/weightbridged
# Exactly what `make install` staged (a test checks this list).
COPY --from=build /staging/usr/local/bin/weightbridged /usr/local/bin/weightbridged
COPY --from=build /staging/usr/local/bin/weightbridge /usr/local/bin/weightbridge
COPY --from=build /staging/usr/local/share/man/man1/weightbridge.1 /usr/local/share/man/man1/weightbridge.1
COPY --from=build /staging/usr/local/share/man/man8/weightbridged.8 /usr/local/share/man/man8/weightbridged.8
COPY --from=build /staging/usr/local/lib/systemd/system/weightbridged.service /usr/local/lib/systemd/system/weightbridged.service
COPY --from=build /staging/usr/local/lib/systemd/system/weightbridged.socket /usr/local/lib/systemd/system/weightbridged.socket
USER weightbridge
ENV WEIGHTBRIDGED_LISTEN=0.0.0.0:8080 \
    WEIGHTBRIDGED_SPOOL=/var/lib/weightbridged
VOLUME ["/var/lib/weightbridged"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s \
  CMD ["/usr/local/bin/weightbridged", "--healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/weightbridged"]
