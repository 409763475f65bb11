// einet's stand-in for GSL's <gsl/gsl_odeiv.h>, found only where GSL's own headers are not
// installed (build.py adds its folder with -idirafter, searched after the system's). NEST's
// GSL models (iaf_cond_exp, aeif_cond_alpha, ...) include it for the types in their Buffers_;
// the hidden-state accessor reads doubles beside them and never calls GSL, so the step,
// control and evolve objects need only be named (held by pointer), and gsl_odeiv_system only
// GSL's layout (its public struct, unchanged since GSL 1.0) for the members after it.
#ifndef EINET_GSL_FALLBACK_ODEIV_H
#define EINET_GSL_FALLBACK_ODEIV_H

#include <stddef.h>

typedef struct einet_gsl_odeiv_step gsl_odeiv_step;
typedef struct einet_gsl_odeiv_control gsl_odeiv_control;
typedef struct einet_gsl_odeiv_evolve gsl_odeiv_evolve;

typedef struct
{
  int ( *function )( double t, const double y[], double dydt[], void* params );
  int ( *jacobian )( double t, const double y[], double* dfdy, double dfdt[], void* params );
  size_t dimension;
  void* params;
} gsl_odeiv_system;

#endif
