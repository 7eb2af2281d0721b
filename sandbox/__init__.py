"""flink-sync's local sandbox: a real kube-apiserver/controller-manager/etcd on 127.0.0.1, the hook server, and
two stand-ins (sandbox.metacontroller for Metacontroller, sandbox.nodeagent for the kubelet). See docs/sandbox.md."""
