"""Settings the two 2D methods (cai, zhou) share: the in-plane training size."""

SLICE_SIZE_HELP = ("In-plane size training slices are padded/cropped to (a multiple of the network's "
                   "down-sampling); 0: the largest slice of the training cases, padded to fit.")
