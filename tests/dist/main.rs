//! `elbo::dist`: every distribution's density against statrs, its gradients against central
//! differences, broadcasting, and errors for bad parameters.

mod distributions;
