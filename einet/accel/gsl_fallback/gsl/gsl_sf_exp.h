// einet's stand-in for GSL's <gsl/gsl_sf_exp.h> (see gsl_odeiv.h here): NEST's GSL models' headers
// include it, but declare nothing that uses it.
