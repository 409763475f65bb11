// einet's stand-in for GSL's <gsl/gsl_matrix.h> (see gsl_odeiv.h here): NEST's GSL models' headers
// include it, but declare nothing that uses it.
