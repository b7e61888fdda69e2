"""fmnist-job: parallel dense-model sweeps for Fashion-MNIST on Ray, and batch scoring."""

__version__ = "0.1.0"
