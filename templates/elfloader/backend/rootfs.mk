# The directory rootfs for Kraftfile.rootfs-dir: `make -f rootfs.mk` puts a static-pie backend
# in rootfs/, which kraft packs into the initrd itself (no BuildKit needed). CC must be able to
# link static-pie: the host's gcc with glibc works; Debian's musl-gcc does not (no rcrt1.o).
CC ?= cc

rootfs/backend: src/server.c | rootfs
	$(CC) -std=c11 -D_GNU_SOURCE -O2 -fPIE -static-pie -s -o $@ src/server.c

rootfs:
	mkdir -p $@
