"""A lab on one machine: "nodes" made of Linux namespaces, reached by Ansible over real SSH.

Each node is a process tree in its own mount, UTS, IPC, network and PID namespaces, pivot_root'ed into an overlay
on one cached Debian root filesystem, with its own hostname, /etc/hosts and sshd. The nodes share a bridge that
lives in a network namespace of the lab's own: nothing is routed or NATed to the host's interfaces. The
controller (Ansible) reaches them through an SSH ProxyCommand that connects from inside that namespace.

  state.py      the lab's folder and what `up` recorded (lab.json)
  network.py    the bridge namespace and each node's veth
  nodes.py      starting and stopping one node (node-setup.sh and node-init run inside it)
  inventory.py  the SSH key and the Ansible inventory (hosts.yml) of the lab
  relay.py      the ProxyCommand: a TCP connection made from inside the lab's namespace
  lab.py        up, down, status
"""
