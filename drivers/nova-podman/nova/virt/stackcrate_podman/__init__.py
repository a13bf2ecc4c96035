"""A nova compute driver that runs instances as podman containers:
compute_driver = stackcrate_podman.driver.PodmanDriver (nova.virt.stackcrate_podman)"""
