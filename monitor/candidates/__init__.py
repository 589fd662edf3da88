"""Stage 1 of the cascade: time-frequency boxes from a fast, streaming tonal/pulse detector.

``spectrogram`` (frames on the UTC sample grid → SNR over a per-band background floor),
``regions`` (active frames → candidate boxes), ``stage`` (one feed's streaming detector) and
``selection`` (which windows go to the classifier: every window, or those centred on boxes).
"""
