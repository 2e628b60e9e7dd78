"""FANN through ctypes, for the benchmarks that time it: its enums and its training-data struct."""

import ctypes

# enums of fann_data.h
FANN_SIGMOID = 3
FANN_TRAIN_BATCH, FANN_TRAIN_RPROP = 1, 2


class FannTrainData(ctypes.Structure):
    """``struct fann_train_data`` (fann_train.h); ``fann_type`` is float or double by library."""

    _fields_ = [
        ("errno_f", ctypes.c_int),
        ("error_log", ctypes.c_void_p),
        ("errstr", ctypes.c_char_p),
        ("num_data", ctypes.c_uint),
        ("num_input", ctypes.c_uint),
        ("num_output", ctypes.c_uint),
        ("input", ctypes.POINTER(ctypes.c_void_p)),
        ("output", ctypes.POINTER(ctypes.c_void_p)),
    ]
