# The directory rootfs for Kraftfile.rootfs-dir: `make -f rootfs.mk` puts a static-pie proxy
# in rootfs/, which kraft packs into the initrd itself (no BuildKit needed).
# CC must be able to link static-pie: the host's gcc with glibc works; Debian's musl-gcc does
# not (no rcrt1.o). LLHTTP_SRC/LLHTTP_INCLUDE: llhttp's sources (vendored copy first, else
# Debian's node-llhttp).
CC ?= cc
LLHTTP_SRC ?= $(if $(wildcard llhttp/src/llhttp.c),llhttp/src,/usr/share/llhttp)
LLHTTP_INCLUDE ?= $(if $(wildcard llhttp/include/llhttp.h),llhttp/include,/usr/share/include/llhttp)

# OpenSSL linked in static (Debian's libssl-dev ships libssl.a and libcrypto.a, built as PIE
# code, which static-pie needs). The linker's warnings that libcrypto's name lookups need
# glibc's shared NSS modules are dropped: the proxy never resolves a name.
rootfs/uproxy-proxy: $(wildcard src/*.c src/*.h) VERSION | rootfs
	$(CC) -std=c11 -D_GNU_SOURCE -DLLHTTP_STRICT_MODE=1 -DUPROXY_VERSION='"$(shell cat VERSION)"' -O2 -fPIE -static-pie -s -Isrc -I$(LLHTTP_INCLUDE) -o $@ \
	  $(wildcard src/*.c) $(LLHTTP_SRC)/api.c $(LLHTTP_SRC)/http.c $(LLHTTP_SRC)/llhttp.c -l:libssl.a -l:libcrypto.a >$@.log 2>&1 \
	  || { cat $@.log; rm -f $@.log; exit 1; }
	@grep -v -e 'in statically linked applications requires' -e ': in function ' $@.log || true
	@rm -f $@.log

rootfs:
	mkdir -p $@
