# The directory rootfs for Kraftfile.rootfs-dir: `make -f rootfs.mk` puts a static-pie backend
# in rootfs/, which kraft packs into the initrd itself (no BuildKit needed). CC must be able to
# link static-pie: the host's gcc with glibc works; Debian's musl-gcc does not (no rcrt1.o).
# LLHTTP_SRC/LLHTTP_INCLUDE: llhttp's sources (vendored copy first, else Debian's node-llhttp),
# compiled in strict mode as in the Makefile.
CC ?= cc
LLHTTP_SRC ?= $(if $(wildcard llhttp/src/llhttp.c),llhttp/src,/usr/share/llhttp)
LLHTTP_INCLUDE ?= $(if $(wildcard llhttp/include/llhttp.h),llhttp/include,/usr/share/include/llhttp)

rootfs/backend: $(wildcard src/*.c src/*.h) | rootfs
	$(CC) -std=c11 -D_GNU_SOURCE -DLLHTTP_STRICT_MODE=1 -O2 -fPIE -static-pie -s -I$(LLHTTP_INCLUDE) -o $@ \
	  $(wildcard src/*.c) $(LLHTTP_SRC)/api.c $(LLHTTP_SRC)/http.c $(LLHTTP_SRC)/llhttp.c

rootfs:
	mkdir -p $@
