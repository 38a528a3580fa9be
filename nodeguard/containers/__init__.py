"""Container logs: kubelet's /var/log/pods layout and Docker's json-file logs."""
