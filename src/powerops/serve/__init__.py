"""The champion at work: the HTTP service (serving, flatforest), the daily batch forecast
(scoring) and the prediction log both write. Uses core, data and model."""
