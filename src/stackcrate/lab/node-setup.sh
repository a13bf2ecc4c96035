#!/bin/sh
# Becomes PID 1 of a lab node's new PID namespace (started by `unshare`), still seeing the host's root:
# mounts the node's root filesystem, pivots into it and execs the node's init.
#   $1: the node's folder (upper, work, merged, inject, containers)   $2: the base root filesystem   $3: the hostname
set -eu
D=$1; BASE=$2; R=$D/merged
mount -t overlay overlay -o "lowerdir=$BASE,upperdir=$D/upper,workdir=$D/work" "$R"
mount -t proc proc "$R/proc"
# /proc/sys is global except net.*: read-only, with the node's own net.* writable
mount --bind "$R/proc/sys" "$R/proc/sys"
mount -o remount,bind,ro "$R/proc/sys"
mount --bind "$R/proc/sys/net" "$R/proc/sys/net"
mount -o remount,bind,rw "$R/proc/sys/net"
mount -t sysfs -o ro sysfs "$R/sys"
# the host's cgroup hierarchies, for podman's containers (runc puts each in a cgroup; the node's own sysfs has none)
mount --rbind /sys/fs/cgroup "$R/sys/fs/cgroup"
# podman's image store on the host's file system: its overlay driver cannot use the node's overlay root as upper
mkdir -p "$D/containers" "$R/var/lib/containers"
mount --bind "$D/containers" "$R/var/lib/containers"
# a /dev of its own: a few device nodes of the host's, never the host's devtmpfs with its disks
mount -t tmpfs -o mode=755,size=1m,nosuid tmpfs "$R/dev"
for d in null zero full random urandom tty; do
    touch "$R/dev/$d"; mount --bind "/dev/$d" "$R/dev/$d"
done
if [ -e /dev/net/tun ]; then   # Open vSwitch's userspace datapath makes its ports with it
    mkdir -p "$R/dev/net"; touch "$R/dev/net/tun"; mount --bind /dev/net/tun "$R/dev/net/tun"
fi
mkdir -p "$R/dev/pts" "$R/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=620,gid=5 devpts "$R/dev/pts"
ln -s pts/ptmx "$R/dev/ptmx"
ln -s /proc/self/fd "$R/dev/fd"
ln -s /proc/self/fd/0 "$R/dev/stdin"; ln -s /proc/self/fd/1 "$R/dev/stdout"; ln -s /proc/self/fd/2 "$R/dev/stderr"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$R/dev/shm"
mount -t tmpfs -o mode=755,nosuid,nodev tmpfs "$R/run"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$R/tmp"
hostname "$3"
cp -a "$D/inject/." "$R/"
cd "$R"
mkdir -p .oldroot
pivot_root . .oldroot
cd /
umount -l /.oldroot
rmdir /.oldroot
exec /usr/bin/python3 -S /usr/local/sbin/stackcrate-node-init
