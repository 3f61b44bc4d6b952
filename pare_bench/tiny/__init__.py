"""The tiny wing: the embedded tiny Wan teachers, their world, sampler and trained PARE students."""
