# The directory rootfs for Kraftfile.rootfs-dir: `make -f rootfs.mk` puts a static-pie proxy
# in rootfs/, which kraft packs into the initrd itself (no BuildKit needed).
# CC must be able to link static-pie: the host's gcc with glibc works; Debian's musl-gcc does
# not (no rcrt1.o). LLHTTP_SRC/LLHTTP_INCLUDE: llhttp's sources (vendored copy first, else
# Debian's node-llhttp).
CC ?= cc
LLHTTP_SRC ?= $(if $(wildcard llhttp/src/llhttp.c),llhttp/src,/usr/share/llhttp)
LLHTTP_INCLUDE ?= $(if $(wildcard llhttp/include/llhttp.h),llhttp/include,/usr/share/include/llhttp)

# No OpenSSL in this static-pie build yet: tls.c is left out and tls_none.c refuses --tls-cert.
rootfs/uproxy-proxy: $(wildcard src/*.c src/*.h) VERSION | rootfs
	$(CC) -std=c11 -D_GNU_SOURCE -DLLHTTP_STRICT_MODE=1 -DUPROXY_VERSION='"$(shell cat VERSION)"' -O2 -fPIE -static-pie -s -Isrc -I$(LLHTTP_INCLUDE) -o $@ \
	  $(filter-out src/tls.c,$(wildcard src/*.c)) $(LLHTTP_SRC)/api.c $(LLHTTP_SRC)/http.c $(LLHTTP_SRC)/llhttp.c

rootfs:
	mkdir -p $@
