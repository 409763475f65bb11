// einet's hidden-state accessor: the state NEST keeps but does not let PyNEST read or set,
// read into flat arrays and written back, so that a restored network continues bit for bit.
//
// What it reaches (NEST 3.10, see docs/hidden-state.md):
// - per neuron of iaf_psc_alpha, iaf_psc_exp, iaf_psc_delta and parrot_neuron: the model's
//   State_ (synaptic currents and their derivatives, the refractory counter), its input ring
//   buffers (spikes and currents already delivered for the coming steps); of the GSL models
//   iaf_cond_exp, iaf_cond_alpha, aeif_cond_exp, aeif_cond_alpha and hh_psc_alpha: the state
//   vector, the refractory counter, the adaptive integration step and the input current of the
//   coming step (both kept in Buffers_ from one step to the next) and the input ring buffers;
//   and of each of them what every ArchivingNode keeps for STDP (Kminus, the post-synaptic
//   spike history with its access counters, the last spike time, the number of incoming STDP
//   connections) and StructuralPlasticityNode's time of the last calcium update;
// - per connection of stdp_synapse and stdp_synapse_hom: Kplus and t_lastspike exactly;
// - the random generators: rank-synced, and per thread vp-synced and vp-specific (the engine's
//   own text serialisation: exact for the standard library's Mersenne twisters);
// - the spikes in transit: between Simulate calls the threads' spike registers hold the spikes
//   emitted in the interval under way (or, at its end, in the one just gathered into the
//   receive buffers), read as (source node id, lag, multiplicity) and written back through the
//   restoring kernel's own target tables, in any layout of the same virtual processes.
//
// Built like connections.cpp (einet/accel/build.py) into a library of its own, and reaching
// private members the same way: an explicit instantiation may name a private member. Here the
// member's type is deduced (template < auto >), so private nested types (State_, Buffers_)
// need not be named.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <deque>
#include <exception>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <system_error>
#include <thread>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "aeif_cond_alpha.h"
#include "aeif_psc_alpha.h"
#include "aeif_psc_exp.h"
#include "aeif_cond_exp.h"
#include "archiving_node.h"
#include "connection_manager.h"
#include "connector_base.h"
#include "event_delivery_manager.h"
#include "hh_cond_exp_traub.h"
#include "hh_psc_alpha.h"
#include "histentry.h"
#include "iaf_cond_alpha.h"
#include "iaf_cond_beta.h"
#include "iaf_cond_exp.h"
#include "iaf_psc_alpha.h"
#include "iaf_psc_delta.h"
#include "izhikevich.h"
#include "iaf_psc_alpha_multisynapse.h"
#include "iaf_psc_exp_multisynapse.h"
#include "iaf_psc_exp.h"
#include "kernel_manager.h"
#include "mpi_manager.h"
#include "node_manager.h"
#include "parrot_neuron.h"
#include "poisson_generator.h"
#include "random_generators.h"
#include "random_manager.h"
#include "ring_buffer.h"
#include "simulation_manager.h"
#include "source_table.h"
#include "spike_data.h"
#include "stdp_synapse.h"
#include "stdp_nn_pre_centered_synapse.h"
#include "stdp_nn_restr_synapse.h"
#include "stdp_nn_symm_synapse.h"
#include "stdp_pl_synapse_hom.h"
#include "stdp_synapse_hom.h"
#include "tsodyks2_synapse.h"
#include "tsodyks_synapse.h"
#include "tsodyks_synapse_hom.h"
#include "vogels_sprekeler_synapse.h"
#include "structural_plasticity_node.h"
#include "target.h"
#include "target_identifier.h"
#include "vp_manager.h"
#include "vp_manager_impl.h"

#ifndef EINET_BUILT_FOR
#define EINET_BUILT_FOR "unknown"
#endif

#include "guard.h"

using einet::guarded;
using einet::say;

namespace
{

template < typename Tag, auto Member >
struct Reach
{
  friend auto
  reach( Tag )
  {
    return Member;
  }
};

#define EINET_REACH( NAME, MEMBER )                                                             \
  struct NAME                                                                                  \
  {                                                                                            \
    friend auto reach( NAME );                                                                 \
  };                                                                                           \
  template struct Reach< NAME, &MEMBER >;

EINET_REACH( AlphaS, nest::iaf_psc_alpha::S_ )
EINET_REACH( AlphaB, nest::iaf_psc_alpha::B_ )
EINET_REACH( ExpS, nest::iaf_psc_exp::S_ )
EINET_REACH( ExpB, nest::iaf_psc_exp::B_ )
EINET_REACH( DeltaS, nest::iaf_psc_delta::S_ )
EINET_REACH( DeltaB, nest::iaf_psc_delta::B_ )
EINET_REACH( ParrotB, nest::parrot_neuron::B_ )
EINET_REACH( CondExpS, nest::iaf_cond_exp::S_ )
EINET_REACH( CondExpB, nest::iaf_cond_exp::B_ )
EINET_REACH( CondAlphaS, nest::iaf_cond_alpha::S_ )
EINET_REACH( CondAlphaB, nest::iaf_cond_alpha::B_ )
EINET_REACH( AeifExpS, nest::aeif_cond_exp::S_ )
EINET_REACH( AeifExpB, nest::aeif_cond_exp::B_ )
EINET_REACH( AeifAlphaS, nest::aeif_cond_alpha::S_ )
EINET_REACH( AeifAlphaB, nest::aeif_cond_alpha::B_ )
EINET_REACH( HhS, nest::hh_psc_alpha::S_ )
EINET_REACH( HhB, nest::hh_psc_alpha::B_ )
EINET_REACH( AeifPscAlphaS, nest::aeif_psc_alpha::S_ )
EINET_REACH( AeifPscAlphaB, nest::aeif_psc_alpha::B_ )
EINET_REACH( AeifPscExpS, nest::aeif_psc_exp::S_ )
EINET_REACH( AeifPscExpB, nest::aeif_psc_exp::B_ )
EINET_REACH( CondBetaS, nest::iaf_cond_beta::S_ )
EINET_REACH( CondBetaB, nest::iaf_cond_beta::B_ )
EINET_REACH( TraubS, nest::hh_cond_exp_traub::S_ )
EINET_REACH( TraubB, nest::hh_cond_exp_traub::B_ )
EINET_REACH( IzhS, nest::izhikevich::S_ )
EINET_REACH( IzhB, nest::izhikevich::B_ )
EINET_REACH( ExpMultiS, nest::iaf_psc_exp_multisynapse::S_ )
EINET_REACH( ExpMultiB, nest::iaf_psc_exp_multisynapse::B_ )
EINET_REACH( AlphaMultiS, nest::iaf_psc_alpha_multisynapse::S_ )
EINET_REACH( AlphaMultiB, nest::iaf_psc_alpha_multisynapse::B_ )
EINET_REACH( Chan3, nest::MultiChannelInputBuffer< 3 >::buffer_ )
EINET_REACH( Chan4, nest::MultiChannelInputBuffer< 4 >::buffer_ )
EINET_REACH( Ring, nest::RingBuffer::buffer_ )
EINET_REACH( Kminus, nest::ArchivingNode::Kminus_ )
EINET_REACH( KminusTriplet, nest::ArchivingNode::Kminus_triplet_ )
EINET_REACH( Trace, nest::ArchivingNode::trace_ )
EINET_REACH( LastSpike, nest::ArchivingNode::last_spike_ )
EINET_REACH( MaxDelay, nest::ArchivingNode::max_delay_ )
EINET_REACH( NIncoming, nest::ArchivingNode::n_incoming_ )
EINET_REACH( History, nest::ArchivingNode::history_ )
EINET_REACH( CaT, nest::StructuralPlasticityNode::Ca_t_ )
EINET_REACH( CaMinus, nest::StructuralPlasticityNode::Ca_minus_ )
EINET_REACH( Connectors, nest::ConnectionManager::connections_ )
EINET_REACH( Registers, nest::EventDeliveryManager::emitted_spikes_register_ )
EINET_REACH( Mt64, nest::RandomGenerator< std::mt19937_64 >::rng_ )
EINET_REACH( Mt32, nest::RandomGenerator< std::mt19937 >::rng_ )
EINET_REACH( PoissonV, nest::poisson_generator::V_ )
EINET_REACH( PoissonDist, nest::poisson_distribution::distribution_ )

template < typename ConnectionT >
struct Array
{
  friend auto reach( Array );
};
template < typename ConnectionT >
struct Kplus
{
  friend auto reach( Kplus );
};
template < typename ConnectionT >
struct TLast
{
  friend auto reach( TLast );
};

template < typename ConnectionT >
struct HasKplus : std::false_type
{
};

// The models whose connections' state the STDP rows hold, each with both kinds of target (the
// second its _hpc variant's): an STDP model's Kplus and last spike, or the last spike alone.
#define EINET_LAST_SPIKE( MODEL, T )                                                            \
  template struct Reach< Array< nest::MODEL< nest::T > >, &nest::Connector< nest::MODEL< nest::T > >::C_ >; \
  template struct Reach< TLast< nest::MODEL< nest::T > >, &nest::MODEL< nest::T >::t_lastspike_ >;
#define EINET_STDP( MODEL, T )                                                                  \
  EINET_LAST_SPIKE( MODEL, T )                                                                  \
  template struct Reach< Kplus< nest::MODEL< nest::T > >, &nest::MODEL< nest::T >::Kplus_ >;    \
  template <>                                                                                   \
  struct HasKplus< nest::MODEL< nest::T > > : std::true_type                                    \
  {                                                                                             \
  };
#define EINET_BOTH( MACRO, MODEL ) MACRO( MODEL, TargetIdentifierPtrRport ) MACRO( MODEL, TargetIdentifierIndex )
EINET_BOTH( EINET_STDP, stdp_synapse )
EINET_BOTH( EINET_STDP, stdp_synapse_hom )
EINET_BOTH( EINET_STDP, stdp_pl_synapse_hom )
EINET_BOTH( EINET_STDP, stdp_nn_pre_centered_synapse )
EINET_BOTH( EINET_STDP, vogels_sprekeler_synapse )
EINET_BOTH( EINET_LAST_SPIKE, stdp_nn_symm_synapse )
EINET_BOTH( EINET_LAST_SPIKE, stdp_nn_restr_synapse )
EINET_BOTH( EINET_LAST_SPIKE, tsodyks2_synapse )
EINET_BOTH( EINET_LAST_SPIKE, tsodyks_synapse )
EINET_BOTH( EINET_LAST_SPIKE, tsodyks_synapse_hom )

template < typename... ConnectionTs >
struct Models
{
};
#define EINET_TYPES( MODEL ) nest::MODEL< nest::TargetIdentifierPtrRport >, nest::MODEL< nest::TargetIdentifierIndex >
using RowModels = Models< EINET_TYPES( stdp_synapse ),
  EINET_TYPES( stdp_synapse_hom ),
  EINET_TYPES( stdp_pl_synapse_hom ),
  EINET_TYPES( stdp_nn_pre_centered_synapse ),
  EINET_TYPES( vogels_sprekeler_synapse ),
  EINET_TYPES( stdp_nn_symm_synapse ),
  EINET_TYPES( stdp_nn_restr_synapse ),
  EINET_TYPES( tsodyks2_synapse ),
  EINET_TYPES( tsodyks_synapse ),
  EINET_TYPES( tsodyks_synapse_hom ) >;

// f.template operator()< T >() for each connection type T of the list until one returns true
// (the connector holds T: the typed functions below return false for any other).
template < typename... ConnectionTs, typename F >
bool
first_model( Models< ConnectionTs... >, F&& f )
{
  return ( f.template operator()< ConnectionTs >() or ... );
}

// A connection's Kplus, or null for a model without one (its rows hold 0 there).
template < typename ConnectionT >
double*
kplus_of( ConnectionT& c )
{
  if constexpr ( HasKplus< ConnectionT >::value )
  {
    return &( c.*reach( Kplus< ConnectionT >() ) );
  }
  else
  {
    return nullptr;
  }
}


// -- nodes -----------------------------------------------------------------------------------
// A node's record is a flat run of doubles:
//   kind, n_core, n_slots, n_channels, n_history,
//   core[n_core], archiving[N_ARCHIVING], slots[n_slots * n_channels], history[n_history * 4]
// Slots are in the order of the coming steps (slot d is the buffer entry get_modulo(d)), so a
// record does not depend on where the kernel's ring-buffer origin happens to be.

enum Kind
{
  NONE = 0,
  IAF_PSC_ALPHA = 1,
  IAF_PSC_EXP = 2,
  IAF_PSC_DELTA = 3,
  PARROT_NEURON = 4,
  IAF_COND_EXP = 5,
  IAF_COND_ALPHA = 6,
  AEIF_COND_EXP = 7,
  AEIF_COND_ALPHA = 8,
  HH_PSC_ALPHA = 9,
  IZHIKEVICH = 10,
  AEIF_PSC_ALPHA = 11,
  AEIF_PSC_EXP = 12,
  IAF_COND_BETA = 13,
  HH_COND_EXP_TRAUB = 14,
  IAF_PSC_EXP_MULTISYNAPSE = 15,
  IAF_PSC_ALPHA_MULTISYNAPSE = 16
};

constexpr size_t HEADER = 5;
constexpr size_t N_ARCHIVING = 8;

nest::Node*
local_node( const long node_id )
{
  if ( node_id < 1 or not nest::kernel().node_manager.is_local_node_id( static_cast< size_t >( node_id ) ) )
  {
    return nullptr;
  }
  nest::Node* node = nest::kernel().node_manager.get_node_or_proxy( static_cast< size_t >( node_id ) );
  return ( node and not node->is_proxy() ) ? node : nullptr;
}

// body( lo, hi ) over parts of [ 0, n ), one std::thread per NEST thread (nodes are read
// apart from each other, each into its own place); a part's exception is rethrown here.
template < typename Body >
void
over_parts( const long n, Body body )
{
  const long parts = std::max< long >( 1, std::min< long >( n / 1024, static_cast< long >( nest::kernel().vp_manager.get_num_threads() ) ) );
  std::vector< std::exception_ptr > failed( parts );
  const auto part = [ & ]( const long p )
  {
    try
    {
      body( n * p / parts, n * ( p + 1 ) / parts );
    }
    catch ( ... )
    {
      failed[ p ] = std::current_exception();
    }
  };
  std::vector< std::thread > workers;
  long p = 1;
  try
  {
    for ( ; p < parts; ++p )
    {
      workers.emplace_back( part, p );
    }
  }
  catch ( const std::system_error& )
  {
    // no thread to be had (a process limit): the parts left run here, after the first
  }
  part( 0 );
  for ( ; p < parts; ++p )
  {
    part( p );
  }
  for ( auto& w : workers )
  {
    w.join();
  }
  for ( const auto& e : failed )
  {
    if ( e )
    {
      std::rethrow_exception( e );
    }
  }
}

// The model's core state as pointers to its fields (doubles and one int counter).
struct Core
{
  Kind kind = NONE;
  std::vector< double* > doubles;
  int* counter = nullptr;  // refractory steps, stored after the doubles
};

// A GSL model's core: its state vector y, then two values of its Buffers_ that carry over from
// one step to the next (update() integrates each step starting from the adaptive step size GSL
// suggested at the end of the last, and with the input current read at the end of the last),
// then the refractory counter. Nothing else carries over: gsl_odeiv_evolve_apply starts each
// step afresh from y and the step size (rkf45 and the standard control keep no state between
// calls; the evolve object only counts), and step_ is the resolution.
template < size_t N, typename Counter, typename GslBuffers >
Core
gsl_core( const Kind kind, double ( &y )[ N ], Counter& counter, GslBuffers& b )
{
  // int in three of the models, unsigned int in the aeif ones: the same size, and an int
  // lvalue may access an unsigned int (counters are small and never negative)
  static_assert( sizeof( Counter ) == sizeof( int ) and std::is_integral_v< Counter > );
  Core c;
  c.kind = kind;
  for ( double& v : y )
  {
    c.doubles.push_back( &v );
  }
  c.doubles.push_back( &b.IntegrationStep_ );
  c.doubles.push_back( &b.I_stim_ );
  c.counter = reinterpret_cast< int* >( &counter );
  return c;
}

Core
core_of( nest::Node* node )
{
  Core c;
  if ( auto* n = dynamic_cast< nest::iaf_psc_alpha* >( node ) )
  {
    auto& s = n->*reach( AlphaS() );
    c = { IAF_PSC_ALPHA, { &s.y0_, &s.dI_ex_, &s.I_ex_, &s.dI_in_, &s.I_in_, &s.y3_ }, &s.r_ };
  }
  else if ( auto* n = dynamic_cast< nest::iaf_psc_exp* >( node ) )
  {
    auto& s = n->*reach( ExpS() );
    c = { IAF_PSC_EXP, { &s.i_0_, &s.i_1_, &s.i_syn_ex_, &s.i_syn_in_, &s.V_m_ }, &s.r_ref_ };
  }
  else if ( auto* n = dynamic_cast< nest::iaf_psc_delta* >( node ) )
  {
    auto& s = n->*reach( DeltaS() );
    c = { IAF_PSC_DELTA, { &s.y0_, &s.y3_, &s.refr_spikes_buffer_ }, &s.r_ };
  }
  else if ( dynamic_cast< nest::parrot_neuron* >( node ) )
  {
    c.kind = PARROT_NEURON;
  }
  else if ( auto* n = dynamic_cast< nest::iaf_cond_exp* >( node ) )
  {
    auto& s = n->*reach( CondExpS() );
    c = gsl_core( IAF_COND_EXP, s.y_, s.r_, n->*reach( CondExpB() ) );
  }
  else if ( auto* n = dynamic_cast< nest::iaf_cond_alpha* >( node ) )
  {
    auto& s = n->*reach( CondAlphaS() );
    c = gsl_core( IAF_COND_ALPHA, s.y, s.r, n->*reach( CondAlphaB() ) );
  }
  else if ( auto* n = dynamic_cast< nest::aeif_cond_exp* >( node ) )
  {
    auto& s = n->*reach( AeifExpS() );
    c = gsl_core( AEIF_COND_EXP, s.y_, s.r_, n->*reach( AeifExpB() ) );
  }
  else if ( auto* n = dynamic_cast< nest::aeif_cond_alpha* >( node ) )
  {
    auto& s = n->*reach( AeifAlphaS() );
    c = gsl_core( AEIF_COND_ALPHA, s.y_, s.r_, n->*reach( AeifAlphaB() ) );
  }
  else if ( auto* n = dynamic_cast< nest::hh_psc_alpha* >( node ) )
  {
    auto& s = n->*reach( HhS() );
    c = gsl_core( HH_PSC_ALPHA, s.y_, s.r_, n->*reach( HhB() ) );
  }
  else if ( auto* n = dynamic_cast< nest::aeif_psc_alpha* >( node ) )
  {
    auto& s = n->*reach( AeifPscAlphaS() );
    c = gsl_core( AEIF_PSC_ALPHA, s.y_, s.r_, n->*reach( AeifPscAlphaB() ) );
  }
  else if ( auto* n = dynamic_cast< nest::aeif_psc_exp* >( node ) )
  {
    auto& s = n->*reach( AeifPscExpS() );
    c = gsl_core( AEIF_PSC_EXP, s.y_, s.r_, n->*reach( AeifPscExpB() ) );
  }
  else if ( auto* n = dynamic_cast< nest::iaf_cond_beta* >( node ) )
  {
    auto& s = n->*reach( CondBetaS() );
    c = gsl_core( IAF_COND_BETA, s.y, s.r, n->*reach( CondBetaB() ) );
  }
  else if ( auto* n = dynamic_cast< nest::hh_cond_exp_traub* >( node ) )
  {
    // its V_.U_old_ (spike detection) is set from V_m at the start of every step: no carry-over
    auto& s = n->*reach( TraubS() );
    c = gsl_core( HH_COND_EXP_TRAUB, s.y_, s.r_, n->*reach( TraubB() ) );
  }
  else if ( auto* n = dynamic_cast< nest::iaf_psc_exp_multisynapse* >( node ) )
  {
    // a current per receptor port: the record's shape follows the node's receptors
    auto& s = n->*reach( ExpMultiS() );
    c = { IAF_PSC_EXP_MULTISYNAPSE, { &s.I_const_ }, &s.refractory_steps_ };
    for ( double& i : s.i_syn_ )
    {
      c.doubles.push_back( &i );
    }
    c.doubles.push_back( &s.V_m_ );
  }
  else if ( auto* n = dynamic_cast< nest::iaf_psc_alpha_multisynapse* >( node ) )
  {
    auto& s = n->*reach( AlphaMultiS() );
    c = { IAF_PSC_ALPHA_MULTISYNAPSE, { &s.I_const_ }, &s.refractory_steps_ };
    for ( auto* values : { &s.y1_syn_, &s.y2_syn_ } )
    {
      for ( double& v : *values )
      {
        c.doubles.push_back( &v );
      }
    }
    c.doubles.push_back( &s.V_m_ );
  }
  else if ( auto* n = dynamic_cast< nest::izhikevich* >( node ) )
  {
    // I_: the input current of the coming step, read at the end of the last (no refractory
    // counter: the record's is 0)
    auto& s = n->*reach( IzhS() );
    c = { IZHIKEVICH, { &s.v_, &s.u_, &s.I_ }, nullptr };
  }
  return c;
}

// Where a GSL model's adaptive integration step is among its core doubles (-1: no such model).
long
integration_step_at( const Core& c )
{
  switch ( c.kind )
  {
  case IAF_COND_EXP:
  case IAF_COND_ALPHA:
  case AEIF_COND_EXP:
  case AEIF_COND_ALPHA:
  case HH_PSC_ALPHA:
  case AEIF_PSC_ALPHA:
  case AEIF_PSC_EXP:
  case IAF_COND_BETA:
  case HH_COND_EXP_TRAUB:
    return static_cast< long >( c.doubles.size() ) - 2;
  default:
    return -1;
  }
}

// The input buffers as one table of slots x channels (several ring buffers side by side).
struct Buffers
{
  size_t slots = 0;
  size_t channels = 0;
  std::vector< std::vector< double >* > rings;            // one per channel (RingBuffer)
  std::vector< std::array< double, 3 > >* chan3 = nullptr;  // MultiChannelInputBuffer< 3 >
  std::vector< std::array< double, 4 > >* chan4 = nullptr;  // MultiChannelInputBuffer< 4 >

  double&
  at( const size_t slot, const size_t channel )
  {
    if ( chan3 )
    {
      return ( *chan3 )[ slot ][ channel ];
    }
    if ( chan4 )
    {
      return ( *chan4 )[ slot ][ channel ];
    }
    return ( *rings[ channel ] )[ slot ];
  }
};

// The GSL models' three ring buffers (the same members in each): spikes onto the excitatory
// and the inhibitory synapse, and currents.
template < typename GslBuffers >
void
gsl_rings( Buffers& b, GslBuffers& g )
{
  b.rings = { &( g.spike_exc_.*reach( Ring() ) ), &( g.spike_inh_.*reach( Ring() ) ), &( g.currents_.*reach( Ring() ) ) };
  b.slots = b.rings[ 0 ]->size();
  b.channels = 3;
}

// A multisynapse model's ring buffers: one a receptor port, then currents.
template < typename MultiBuffers >
void
multisynapse_rings( Buffers& b, MultiBuffers& m )
{
  for ( auto& ring : m.spikes_ )
  {
    b.rings.push_back( &( ring.*reach( Ring() ) ) );
  }
  b.rings.push_back( &( m.currents_.*reach( Ring() ) ) );
  b.slots = b.rings.back()->size();
  b.channels = b.rings.size();
}

Buffers
buffers_of( nest::Node* node, const Kind kind )
{
  Buffers b;
  switch ( kind )
  {
  case IAF_PSC_ALPHA:
    b.chan3 = &( ( static_cast< nest::iaf_psc_alpha* >( node )->*reach( AlphaB() ) ).input_buffer_.*reach( Chan3() ) );
    b.slots = b.chan3->size();
    b.channels = 3;
    break;
  case IAF_PSC_EXP:
    b.chan4 = &( ( static_cast< nest::iaf_psc_exp* >( node )->*reach( ExpB() ) ).input_buffer_.*reach( Chan4() ) );
    b.slots = b.chan4->size();
    b.channels = 4;
    break;
  case IAF_PSC_DELTA:
  {
    auto& buffers = static_cast< nest::iaf_psc_delta* >( node )->*reach( DeltaB() );
    b.rings = { &( buffers.spikes_.*reach( Ring() ) ), &( buffers.currents_.*reach( Ring() ) ) };
    b.slots = b.rings[ 0 ]->size();
    b.channels = 2;
    break;
  }
  case IZHIKEVICH:
  {
    auto& buffers = static_cast< nest::izhikevich* >( node )->*reach( IzhB() );
    b.rings = { &( buffers.spikes_.*reach( Ring() ) ), &( buffers.currents_.*reach( Ring() ) ) };
    b.slots = b.rings[ 0 ]->size();
    b.channels = 2;
    break;
  }
  case PARROT_NEURON:
  {
    auto& buffers = static_cast< nest::parrot_neuron* >( node )->*reach( ParrotB() );
    b.rings = { &( buffers.n_spikes_.*reach( Ring() ) ) };
    b.slots = b.rings[ 0 ]->size();
    b.channels = 1;
    break;
  }
  case IAF_COND_EXP:
    gsl_rings( b, static_cast< nest::iaf_cond_exp* >( node )->*reach( CondExpB() ) );
    break;
  case IAF_COND_ALPHA:
    gsl_rings( b, static_cast< nest::iaf_cond_alpha* >( node )->*reach( CondAlphaB() ) );
    break;
  case AEIF_COND_EXP:
    gsl_rings( b, static_cast< nest::aeif_cond_exp* >( node )->*reach( AeifExpB() ) );
    break;
  case AEIF_COND_ALPHA:
    gsl_rings( b, static_cast< nest::aeif_cond_alpha* >( node )->*reach( AeifAlphaB() ) );
    break;
  case AEIF_PSC_ALPHA:
    gsl_rings( b, static_cast< nest::aeif_psc_alpha* >( node )->*reach( AeifPscAlphaB() ) );
    break;
  case AEIF_PSC_EXP:
    gsl_rings( b, static_cast< nest::aeif_psc_exp* >( node )->*reach( AeifPscExpB() ) );
    break;
  case IAF_COND_BETA:
    gsl_rings( b, static_cast< nest::iaf_cond_beta* >( node )->*reach( CondBetaB() ) );
    break;
  case HH_COND_EXP_TRAUB:
    gsl_rings( b, static_cast< nest::hh_cond_exp_traub* >( node )->*reach( TraubB() ) );
    break;
  case HH_PSC_ALPHA:
    gsl_rings( b, static_cast< nest::hh_psc_alpha* >( node )->*reach( HhB() ) );
    break;
  case IAF_PSC_EXP_MULTISYNAPSE:
    multisynapse_rings( b, static_cast< nest::iaf_psc_exp_multisynapse* >( node )->*reach( ExpMultiB() ) );
    break;
  case IAF_PSC_ALPHA_MULTISYNAPSE:
    multisynapse_rings( b, static_cast< nest::iaf_psc_alpha_multisynapse* >( node )->*reach( AlphaMultiB() ) );
    break;
  case NONE:
    break;
  }
  return b;
}

size_t
record_size( nest::Node* node )
{
  const Core core = core_of( node );
  if ( core.kind == NONE )
  {
    return 0;
  }
  const Buffers b = buffers_of( node, core.kind );
  const auto& history = static_cast< nest::ArchivingNode* >( node )->*reach( History() );
  return HEADER + core.doubles.size() + 1 + N_ARCHIVING + b.slots * b.channels + 4 * history.size();
}

void
read_record( nest::Node* node, double* out )
{
  const Core core = core_of( node );
  Buffers b = buffers_of( node, core.kind );
  auto* a = static_cast< nest::ArchivingNode* >( node );
  auto* sp = static_cast< nest::StructuralPlasticityNode* >( node );
  const auto& history = a->*reach( History() );
  const size_t n_core = core.doubles.size() + 1;
  double* o = out;
  *o++ = core.kind;
  *o++ = static_cast< double >( n_core );
  *o++ = static_cast< double >( b.slots );
  *o++ = static_cast< double >( b.channels );
  *o++ = static_cast< double >( history.size() );
  for ( const double* d : core.doubles )
  {
    *o++ = *d;
  }
  *o++ = core.counter ? *core.counter : 0;
  *o++ = a->*reach( Kminus() );
  *o++ = a->*reach( KminusTriplet() );
  *o++ = a->*reach( Trace() );
  *o++ = a->*reach( LastSpike() );
  *o++ = a->*reach( MaxDelay() );
  *o++ = static_cast< double >( a->*reach( NIncoming() ) );
  *o++ = sp->*reach( CaT() );
  *o++ = sp->*reach( CaMinus() );
  auto& edm = nest::kernel().event_delivery_manager;
  for ( size_t d = 0; d < b.slots; ++d )
  {
    const size_t slot = static_cast< size_t >( edm.get_modulo( static_cast< long >( d ) ) );
    for ( size_t ch = 0; ch < b.channels; ++ch )
    {
      *o++ = b.at( slot, ch );
    }
  }
  for ( const nest::histentry& h : history )
  {
    *o++ = h.t_;
    *o++ = h.Kminus_;
    *o++ = h.Kminus_triplet_;
    *o++ = static_cast< double >( h.access_counter_ );
  }
}

// Write a record back; the node's buffers are initialised first (as NEST's own first
// prepare() would, which then leaves them alone), so that what is written stays.
std::string
write_record( nest::Node* node, const double* in, const size_t n )
{
  node->init();
  Core core = core_of( node );
  Buffers b = buffers_of( node, core.kind );
  if ( n < HEADER or static_cast< Kind >( static_cast< int >( in[ 0 ] ) ) != core.kind )
  {
    return "the stored hidden state is of another model";
  }
  const size_t n_core = core.doubles.size() + 1;
  const size_t slots = static_cast< size_t >( in[ 2 ] );
  const size_t channels = static_cast< size_t >( in[ 3 ] );
  const size_t n_history = static_cast< size_t >( in[ 4 ] );
  if ( static_cast< size_t >( in[ 1 ] ) != n_core or slots != b.slots or channels != b.channels )
  {
    return "the stored input buffers do not fit this kernel's (other delays?)";
  }
  if ( n != HEADER + n_core + N_ARCHIVING + slots * channels + 4 * n_history )
  {
    return "a hidden-state record has the wrong length";
  }
  // GSL would never leave a step that does not advance: update() would loop on it for good
  const long step_at = integration_step_at( core );
  if ( step_at >= 0 and not( std::isfinite( in[ HEADER + step_at ] ) and in[ HEADER + step_at ] > 0 ) )
  {
    return "a stored integration step is not a positive number";
  }
  auto* a = static_cast< nest::ArchivingNode* >( node );
  auto* sp = static_cast< nest::StructuralPlasticityNode* >( node );
  const double* i = in + HEADER;
  for ( double* d : core.doubles )
  {
    *d = *i++;
  }
  if ( core.counter )
  {
    *core.counter = static_cast< int >( *i );
  }
  ++i;
  a->*reach( Kminus() ) = *i++;
  a->*reach( KminusTriplet() ) = *i++;
  a->*reach( Trace() ) = *i++;
  a->*reach( LastSpike() ) = *i++;
  a->*reach( MaxDelay() ) = *i++;
  a->*reach( NIncoming() ) = static_cast< size_t >( *i++ );
  sp->*reach( CaT() ) = *i++;
  sp->*reach( CaMinus() ) = *i++;
  auto& edm = nest::kernel().event_delivery_manager;
  for ( size_t d = 0; d < slots; ++d )
  {
    const size_t slot = static_cast< size_t >( edm.get_modulo( static_cast< long >( d ) ) );
    for ( size_t ch = 0; ch < channels; ++ch )
    {
      b.at( slot, ch ) = *i++;
    }
  }
  auto& history = a->*reach( History() );
  history.clear();
  for ( size_t k = 0; k < n_history; ++k, i += 4 )
  {
    history.emplace_back( i[ 0 ], i[ 1 ], i[ 2 ], static_cast< size_t >( i[ 3 ] ) );
  }
  return "";
}

// -- STDP connections ------------------------------------------------------------------------

struct StdpRow
{
  long source;
  long target;
  double* kplus;
  double* tlast;
};

template < typename ConnectionT >
bool
stdp_rows_typed( nest::ConnectorBase* base, const size_t tid, const nest::synindex syn_id, std::vector< StdpRow >& rows )
{
  auto* connector = dynamic_cast< nest::Connector< ConnectionT >* >( base );
  if ( not connector )
  {
    return false;
  }
  auto& array = connector->*reach( Array< ConnectionT >() );
  auto& cm = nest::kernel().connection_manager;
  rows.reserve( rows.size() + array.size() );
  for ( size_t lcid = 0; lcid < array.size(); ++lcid )
  {
    ConnectionT& c = array[ lcid ];
    if ( c.is_disabled() )
    {
      continue;
    }
    rows.push_back( { static_cast< long >( cm.get_source_node_id( tid, syn_id, lcid ) ),
      static_cast< long >( c.get_target( tid )->get_node_id() ),
      kplus_of( c ),
      &( c.*reach( TLast< ConnectionT >() ) ) } );
  }
  return true;
}

template < typename ConnectionT >
bool
stdp_count_typed( nest::ConnectorBase* base, long& count )
{
  auto* connector = dynamic_cast< nest::Connector< ConnectionT >* >( base );
  if ( not connector )
  {
    return false;
  }
  for ( const ConnectionT& c : connector->*reach( Array< ConnectionT >() ) )
  {
    count += c.is_disabled() ? 0 : 1;
  }
  return true;
}

// The connector of the model on every thread (null where a thread has none).
std::vector< nest::ConnectorBase* >
stdp_connectors( const char* model, nest::synindex& syn_id )
{
  syn_id = nest::kernel().model_manager.get_synapse_model_id( model );
  auto& connectors = nest::kernel().connection_manager.*reach( Connectors() );
  std::vector< nest::ConnectorBase* > found( connectors.size(), nullptr );
  for ( size_t tid = 0; tid < connectors.size(); ++tid )
  {
    if ( syn_id < connectors[ tid ].size() )
    {
      found[ tid ] = connectors[ tid ][ syn_id ];
    }
  }
  return found;
}

const char* const NOT_STDP = " is not a model whose connections' last spike einet reads (docs/hidden-state.md)";

void
not_stdp( const char* model )
{
  throw std::runtime_error( std::string( model ) + NOT_STDP );
}

// The enabled local connections of the model (neuron to neuron).
long
stdp_count( const char* model )
{
  nest::synindex syn_id;
  long count = 0;
  for ( nest::ConnectorBase* base : stdp_connectors( model, syn_id ) )
  {
    if ( base and not first_model( RowModels {}, [ & ]< typename T >() { return stdp_count_typed< T >( base, count ); } ) )
    {
      not_stdp( model );
    }
  }
  return count;
}

// Every enabled local connection of the model (neuron to neuron), thread by thread in
// connector order, with pointers to its Kplus and t_lastspike; one std::thread per NEST thread.
std::vector< StdpRow >
stdp_rows( const char* model )
{
  nest::synindex syn_id;
  const auto connectors = stdp_connectors( model, syn_id );
  std::vector< std::vector< StdpRow > > parts( connectors.size() );
  std::vector< std::string > problems( connectors.size() );
  std::vector< std::thread > workers;
  for ( size_t tid = 0; tid < connectors.size(); ++tid )
  {
    workers.emplace_back(
      [ &, tid ]
      {
        try
        {
          nest::ConnectorBase* base = connectors[ tid ];
          if ( base
            and not first_model( RowModels {}, [ & ]< typename T >() { return stdp_rows_typed< T >( base, tid, syn_id, parts[ tid ] ); } ) )
          {
            problems[ tid ] = std::string( model ) + NOT_STDP;
          }
        }
        catch ( const std::exception& e )
        {
          problems[ tid ] = e.what();
        }
      } );
  }
  for ( auto& w : workers )
  {
    w.join();
  }
  std::vector< StdpRow > rows;
  for ( size_t tid = 0; tid < connectors.size(); ++tid )
  {
    if ( not problems[ tid ].empty() )
    {
      throw std::runtime_error( problems[ tid ] );
    }
    rows.insert( rows.end(), parts[ tid ].begin(), parts[ tid ].end() );
  }
  return rows;
}

// Writing in the order of the restore's Connect: einet's restore connects a model's stored
// rows in their order (one array Connect), and NEST appends each connection to its target's
// thread's connector, so before NEST sorts them (at the next Prepare) thread t's connector
// holds exactly the rows whose target is a neuron on thread t, in row order. A connection
// that is not its row (the connectors were sorted or changed since) makes the whole write
// answer ORDER_DIFFERS: the caller then matches by source and target instead. A row with NaN
// (its source has no record in the section) is matched but not written.

constexpr long ORDER_DIFFERS = -2;

constexpr int ELSEWHERE = -2;

// Per node id (index 0 unused): the thread of a neuron local here (a node with proxies: its
// connections are in the connectors), ELSEWHERE for a neuron of another process, -1 for a
// device (every thread holds a copy of one, whichever process its id belongs to).
std::vector< int >
neuron_threads()
{
  auto& nm = nest::kernel().node_manager;
  const size_t size = nm.size();
  std::vector< int > out( size + 1, -1 );
  for ( size_t id = 1; id <= size; ++id )
  {
    if ( not nm.is_local_node_id( id ) )
    {
      const nest::Node* copy = nm.get_node_or_proxy( id, 0 );
      out[ id ] = ( copy and not copy->is_proxy() and not copy->has_proxies() ) ? -1 : ELSEWHERE;
      continue;
    }
    const nest::Node* node = nm.get_node_or_proxy( id );
    if ( node and not node->is_proxy() and node->has_proxies() )
    {
      out[ id ] = static_cast< int >( node->get_thread() );
    }
  }
  return out;
}

// Stored STDP rows to write: source and target per row; Kplus and t_lastspike per row, or per
// run of rows (runs[r] .. runs[r + 1] - 1 share run r's values: a section's rows, which would
// take 16 bytes a row expanded); rows whose source is not covered (covered[source] == 0), or
// whose values are NaN, are matched but not written.
struct OrderedRows
{
  const int32_t* source;
  const int32_t* target;
  const double* kplus;
  const double* tlast;
  const int64_t* runs;  // nullptr: values per row
  long n_runs;
  const uint8_t* covered;  // nullptr: every source
  long n_covered;
  long n;
  const std::vector< int >* threads;

  // the thread whose connector holds row k (-1: to or from a device, in no connector, or to a
  // neuron of another process, in its connectors)
  int
  thread_of( const long k ) const
  {
    const auto& t = *threads;
    const long s = source[ k ];
    const long g = target[ k ];
    if ( s < 1 or g < 1 or s >= static_cast< long >( t.size() ) or g >= static_cast< long >( t.size() ) or t[ s ] == -1 )
    {
      return -1;
    }
    return std::max( t[ g ], -1 );
  }

  // runs that cover the rows exactly, in order (value_at relies on it)
  void
  check() const
  {
    if ( runs and ( n_runs < 0 or runs[ 0 ] != 0 or runs[ n_runs ] != n or not std::is_sorted( runs, runs + n_runs + 1 ) ) )
    {
      throw std::runtime_error( "the runs do not cover the rows in order" );
    }
  }

  // where row k's values are: the row itself, or its run (``hint``: the run found last; rows
  // walked in order find theirs there or in the next)
  long
  value_at( const long k, long& hint ) const
  {
    if ( not runs )
    {
      return k;
    }
    for ( long step = 0; step < 2; ++step, ++hint )
    {
      if ( hint >= 0 and hint < n_runs and runs[ hint ] <= k and k < runs[ hint + 1 ] )
      {
        return hint;
      }
    }
    hint = static_cast< long >( std::upper_bound( runs, runs + n_runs + 1, static_cast< int64_t >( k ) ) - runs ) - 1;
    return hint;
  }

  // whether row k (at values v) is written
  bool
  written( const long k, const long v ) const
  {
    if ( covered and ( source[ k ] < 0 or source[ k ] >= n_covered or not covered[ source[ k ] ] ) )
    {
      return false;
    }
    return not std::isnan( kplus[ v ] ) and not std::isnan( tlast[ v ] );  // NaN: left as it is
  }
};

// 1: written; 0: the connector holds no ConnectionT; ORDER_DIFFERS. The rows are a block of a
// table: they start at connection ``cursor`` of the thread, which is left where the next block
// starts; connections may follow them unless the block is the ``last``.
template < typename ConnectionT >
long
write_ordered_typed( nest::ConnectorBase* base, const size_t tid, const nest::synindex syn_id, const OrderedRows& rows, int64_t& cursor, const bool last )
{
  auto* connector = dynamic_cast< nest::Connector< ConnectionT >* >( base );
  if ( not connector )
  {
    return 0;
  }
  auto& array = connector->*reach( Array< ConnectionT >() );
  auto& cm = nest::kernel().connection_manager;
  const int me = static_cast< int >( tid );
  long k = 0;
  long run = 0;
  size_t lcid = static_cast< size_t >( std::max< int64_t >( cursor, 0 ) );
  for ( ; lcid < array.size(); ++lcid )
  {
    ConnectionT& c = array[ lcid ];
    while ( k < rows.n and rows.thread_of( k ) != me )
    {
      ++k;
    }
    if ( k == rows.n and not last )
    {
      break;  // the next block's connections
    }
    if ( k == rows.n or c.is_disabled() or static_cast< long >( cm.get_source_node_id( tid, syn_id, lcid ) ) != rows.source[ k ]
      or static_cast< long >( c.get_target( tid )->get_node_id() ) != rows.target[ k ] )
    {
      return ORDER_DIFFERS;
    }
    const long v = rows.value_at( k, run );
    if ( rows.written( k, v ) )
    {
      if constexpr ( HasKplus< ConnectionT >::value )
      {
        c.*reach( Kplus< ConnectionT >() ) = rows.kplus[ v ];
      }
      c.*reach( TLast< ConnectionT >() ) = rows.tlast[ v ];
    }
    ++k;
  }
  while ( k < rows.n and rows.thread_of( k ) != me )
  {
    ++k;
  }
  cursor = static_cast< int64_t >( lcid );
  return k == rows.n ? 1 : ORDER_DIFFERS;
}

// Write Kplus and t_lastspike row by row in connect order (see above), a block of rows at a
// time (``cursors``: each thread's first connection of the block, one per thread, moved on);
// one std::thread per NEST thread. Returns the rows written, or ORDER_DIFFERS.
long
stdp_write_ordered( const char* model, const OrderedRows& rows, int64_t* cursors, const long n_cursors, const bool last )
{
  nest::synindex syn_id;
  const auto connectors = stdp_connectors( model, syn_id );
  if ( n_cursors != static_cast< long >( connectors.size() ) )
  {
    throw std::runtime_error( "a cursor per thread is needed" );
  }
  std::vector< long > results( connectors.size(), 1 );
  std::vector< std::string > problems( connectors.size() );
  std::vector< std::thread > workers;
  for ( size_t tid = 0; tid < connectors.size(); ++tid )
  {
    workers.emplace_back(
      [ &, tid ]
      {
        try
        {
          nest::ConnectorBase* base = connectors[ tid ];
          if ( not base )
          {
            // no connection of the model on this thread: no row may name it
            for ( long k = 0; k < rows.n; ++k )
            {
              if ( rows.thread_of( k ) == static_cast< int >( tid ) )
              {
                results[ tid ] = ORDER_DIFFERS;
                break;
              }
            }
            return;
          }
          long r = 0;
          first_model( RowModels {}, [ & ]< typename T >() { return ( r = write_ordered_typed< T >( base, tid, syn_id, rows, cursors[ tid ], last ) ) != 0; } );
          if ( r == 0 )
          {
            problems[ tid ] = std::string( model ) + NOT_STDP;
          }
          results[ tid ] = r;
        }
        catch ( const std::exception& e )
        {
          problems[ tid ] = e.what();
        }
      } );
  }
  for ( auto& w : workers )
  {
    w.join();
  }
  for ( size_t tid = 0; tid < connectors.size(); ++tid )
  {
    if ( not problems[ tid ].empty() )
    {
      throw std::runtime_error( problems[ tid ] );
    }
  }
  long written = 0;
  for ( long k = 0; k < rows.n; ++k )
  {
    written += rows.thread_of( k ) >= 0;
  }
  return std::any_of( results.begin(), results.end(), []( const long r ) { return r == ORDER_DIFFERS; } ) ? ORDER_DIFFERS : written;
}

// The connections of the model whose source is among the wanted (a read-back sample): their
// source, target, Kplus and t_lastspike, each thread's connector scanned once.
struct Hit
{
  long source;
  long target;
  double kplus;
  double tlast;
};

template < typename ConnectionT >
bool
stdp_hits_typed( nest::ConnectorBase* base, const size_t tid, const nest::synindex syn_id, const std::vector< char >& wanted, std::vector< Hit >& hits )
{
  auto* connector = dynamic_cast< nest::Connector< ConnectionT >* >( base );
  if ( not connector )
  {
    return false;
  }
  auto& array = connector->*reach( Array< ConnectionT >() );
  auto& cm = nest::kernel().connection_manager;
  for ( size_t lcid = 0; lcid < array.size(); ++lcid )
  {
    const size_t source = cm.get_source_node_id( tid, syn_id, lcid );
    if ( source < wanted.size() and wanted[ source ] and not array[ lcid ].is_disabled() )
    {
      ConnectionT& c = array[ lcid ];
      const double* kplus = kplus_of( c );
      hits.push_back( { static_cast< long >( source ), static_cast< long >( c.get_target( tid )->get_node_id() ), kplus ? *kplus : 0.0, c.*reach( TLast< ConnectionT >() ) } );
    }
  }
  return true;
}

std::vector< Hit >
stdp_hits( const char* model, const std::vector< char >& wanted )
{
  nest::synindex syn_id;
  const auto connectors = stdp_connectors( model, syn_id );
  std::vector< Hit > hits;
  for ( size_t tid = 0; tid < connectors.size(); ++tid )
  {
    nest::ConnectorBase* base = connectors[ tid ];
    if ( base and not first_model( RowModels {}, [ & ]< typename T >() { return stdp_hits_typed< T >( base, tid, syn_id, wanted, hits ); } ) )
    {
      not_stdp( model );
    }
  }
  return hits;
}

// -- random generators -----------------------------------------------------------------------

nest::RngPtr
rng_of( const long which, const long tid )
{
  auto& rm = nest::kernel().random_manager;
  const long threads = static_cast< long >( nest::kernel().vp_manager.get_num_threads() );
  if ( which == 0 )
  {
    return rm.get_rank_synced_rng();
  }
  if ( tid < 0 or tid >= threads )
  {
    throw std::runtime_error( "no such thread" );
  }
  return which == 1 ? rm.get_vp_synced_rng( tid ) : rm.get_vp_specific_rng( tid );
}

std::string
rng_text( nest::RngPtr rng )
{
  std::ostringstream text;
  if ( auto* g = dynamic_cast< nest::RandomGenerator< std::mt19937_64 >* >( rng ) )
  {
    text << "mt19937_64 " << ( g->*reach( Mt64() ) );
  }
  else if ( auto* g = dynamic_cast< nest::RandomGenerator< std::mt19937 >* >( rng ) )
  {
    text << "mt19937 " << ( g->*reach( Mt32() ) );
  }
  else
  {
    throw std::runtime_error( "the kernel's rng_type is not one einet can read (mt19937, mt19937_64)" );
  }
  return text.str();
}

void
set_rng_text( nest::RngPtr rng, const std::string& text )
{
  std::istringstream in( text );
  std::string type;
  in >> type;
  if ( auto* g = dynamic_cast< nest::RandomGenerator< std::mt19937_64 >* >( rng ); g and type == "mt19937_64" )
  {
    std::mt19937_64 engine;
    in >> engine;
    if ( in.fail() )
    {
      throw std::runtime_error( "damaged random generator state" );
    }
    g->*reach( Mt64() ) = engine;
  }
  else if ( auto* g = dynamic_cast< nest::RandomGenerator< std::mt19937 >* >( rng ); g and type == "mt19937" )
  {
    std::mt19937 engine;
    in >> engine;
    if ( in.fail() )
    {
      throw std::runtime_error( "damaged random generator state" );
    }
    g->*reach( Mt32() ) = engine;
  }
  else
  {
    throw std::runtime_error( "the stored random generator is of another type than the kernel's" );
  }
}

// -- spikes in transit -----------------------------------------------------------------------
// NEST puts each spike a neuron emits into its thread's spike register, one entry per target in
// the neuron's target table (send_remote; each entry repeated for the spike's multiplicity),
// gathers the registers into the receive buffers at the end of each communication interval and
// clears them only when the next interval begins. Between two Simulate calls the registers
// therefore hold every spike whose remote targets have not been given it yet: those of the
// interval under way or, at its end, of the interval just gathered. Each is read as an
// emission (source, lag, multiplicity), which names no rank, thread or connection index: any
// layout of the same virtual processes rebuilds the same entries from its own target tables.
struct Emission
{
  long source;
  long lag;
  long count;
};

void
require_on_grid()
{
  if ( nest::kernel().event_delivery_manager.get_off_grid_communication() )
  {
    throw std::runtime_error( "off-grid spikes in transit are not supported" );
  }
}

bool
same_entry( const nest::SpikeDataWithRank& s, const nest::Target& t, const size_t lag )
{
  const nest::SpikeData& d = s.spike_data;
  return s.rank == t.get_rank() and d.get_tid() == t.get_tid() and d.get_syn_id() == t.get_syn_id() and d.get_lcid() == t.get_lcid()
    and d.get_lag() == lag and not d.is_flush_event();
}

// The target table entries NEST sends a local neuron's spikes through (send_remote).
const std::vector< nest::Target >&
targets_of( const nest::Node* node )
{
  auto& kernel = nest::kernel();
  return kernel.connection_manager.get_remote_targets_of_local_node(
    node->get_thread(), kernel.vp_manager.node_id_to_lid( node->get_node_id() ) );
}

// The emissions in this process's registers, thread by thread, each thread's in the order
// NEST made them (a run updates a thread's neurons in node id order, each through the part of
// the interval it simulates; two Simulate calls inside one interval make two such passes).
// An entry names its source: a target table entry is one source's (its connection block, or
// with compressed spikes its index in the compressed table), so a map from each local
// neuron's targets to the neuron reads the register in one walk.
std::vector< Emission >
emissions()
{
  require_on_grid();
  auto& kernel = nest::kernel();
  const auto& registers = kernel.event_delivery_manager.*reach( Registers() );
  const auto key = []( const size_t rank, const size_t tid, const size_t syn, const size_t lcid )
  { return std::make_tuple( rank, tid, syn, lcid ); };
  std::vector< Emission > found;
  for ( size_t tid = 0; tid < registers.size(); ++tid )
  {
    const auto& reg = *registers[ tid ];
    if ( reg.empty() )
    {
      continue;
    }
    std::map< std::tuple< size_t, size_t, size_t, size_t >, const nest::Node* > source_of;
    for ( const auto& entry : kernel.node_manager.get_local_nodes( tid ) )
    {
      const nest::Node* node = entry.get_node();
      if ( node->has_proxies() )
      {
        for ( const auto& t : targets_of( node ) )
        {
          source_of.emplace( key( t.get_rank(), t.get_tid(), t.get_syn_id(), t.get_lcid() ), node );
        }
      }
    }
    size_t at = 0;
    while ( at < reg.size() )
    {
      const nest::SpikeData& first = reg[ at ].spike_data;
      const auto it = source_of.find( key( reg[ at ].rank, first.get_tid(), first.get_syn_id(), first.get_lcid() ) );
      if ( it == source_of.end() )
      {
        throw std::runtime_error( "a spike register holds entries of no neuron of its thread (spikes in transit)" );
      }
      const nest::Node* node = it->second;
      const auto& targets = targets_of( node );
      const size_t lag = first.get_lag();
      // send_remote: every target of the source, each repeated for the spike's multiplicity
      size_t count = 1;
      while ( at + count < reg.size() and same_entry( reg[ at + count ], targets[ 0 ], lag ) )
      {
        ++count;
      }
      for ( size_t i = 0; i < targets.size() * count; ++i )
      {
        if ( at + i >= reg.size() or not same_entry( reg[ at + i ], targets[ i / count ], lag ) )
        {
          throw std::runtime_error( "a spike register holds entries that are no spike of its neurons (spikes in transit)" );
        }
      }
      found.push_back( { static_cast< long >( node->get_node_id() ), static_cast< long >( lag ), static_cast< long >( count ) } );
      at += targets.size() * count;
    }
  }
  return found;
}

constexpr size_t MAX_REGISTER_ENTRIES = size_t( 1 ) << 26;

// Put the emissions of this process's neurons into their threads' registers as send_remote
// did, from this kernel's target tables (made by a Prepare since the connections were); those
// of other processes' neurons are theirs to write. Every row is checked before the registers
// are touched. Returns the emissions written here.
long
write_emissions( const long* source, const long* lag, const long* count, const long n )
{
  require_on_grid();
  auto& kernel = nest::kernel();
  auto& nm = kernel.node_manager;
  const long min_delay = kernel.connection_manager.get_min_delay();
  std::vector< std::pair< const nest::Node*, long > > mine;
  for ( long k = 0; k < n; ++k )
  {
    if ( lag[ k ] < 0 or lag[ k ] >= min_delay or count[ k ] < 1 )
    {
      throw std::runtime_error( "a spike in transit at a lag outside this kernel's communication interval" );
    }
    if ( source[ k ] < 1 or static_cast< size_t >( source[ k ] ) > nm.size() )
    {
      throw std::runtime_error( "a spike in transit from node " + std::to_string( source[ k ] ) + ", which this kernel lacks" );
    }
    if ( not nm.is_local_node_id( static_cast< size_t >( source[ k ] ) ) )
    {
      continue;
    }
    const nest::Node* node = local_node( source[ k ] );
    if ( not node or not node->has_proxies() )
    {
      throw std::runtime_error( "a spike in transit from node " + std::to_string( source[ k ] ) + ", which is no neuron here" );
    }
    mine.emplace_back( node, k );
  }
  // a file's multiplicities are bounded, but not what they add up to: no network's interval
  // makes 64M entries (1 GiB), a hostile file could ask for terabytes
  size_t entries = 0;
  for ( const auto& [ node, k ] : mine )
  {
    entries += static_cast< size_t >( count[ k ] ) * targets_of( node ).size();
    if ( entries > MAX_REGISTER_ENTRIES )
    {
      throw std::runtime_error( "the spikes in transit would make more register entries than any network does" );
    }
  }
  auto& registers = kernel.event_delivery_manager.*reach( Registers() );
  for ( auto* reg : registers )
  {
    reg->clear();
  }
  for ( const auto& [ node, k ] : mine )
  {
    for ( const auto& target : targets_of( node ) )
    {
      for ( long i = 0; i < count[ k ]; ++i )
      {
        registers[ node->get_thread() ]->emplace_back( target, static_cast< size_t >( lag[ k ] ), false );
      }
    }
  }
  return static_cast< long >( mine.size() );
}

// Every thread's poisson_generator: its std::poisson_distribution keeps state between draws
// (libstdc++'s rejection method for a mean of 12 or more caches a normal deviate), written as
// "node_id vp <the distribution's own text>" lines (a device has a copy per virtual process).
std::string
devices_text()
{
  std::ostringstream text;
  text.precision( 17 );
  auto& nm = nest::kernel().node_manager;
  for ( size_t tid = 0; tid < nest::kernel().vp_manager.get_num_threads(); ++tid )
  {
    for ( const auto& entry : nm.get_local_nodes( tid ) )
    {
      if ( auto* g = dynamic_cast< nest::poisson_generator* >( entry.get_node() ) )
      {
        text << g->get_node_id() << ' ' << nest::kernel().vp_manager.thread_to_vp( tid ) << ' ' << ( ( g->*reach( PoissonV() ) ).poisson_dist_.*reach( PoissonDist() ) ) << '\n';
      }
    }
  }
  return text.str();
}

void
set_devices_text( const std::string& text )
{
  std::istringstream lines( text );
  std::string line;
  auto& nm = nest::kernel().node_manager;
  while ( std::getline( lines, line ) )
  {
    std::istringstream in( line );
    size_t node_id = 0;
    size_t vp = 0;
    in >> node_id >> vp;
    const auto& vm = nest::kernel().vp_manager;
    if ( in.fail() or vp >= vm.get_num_virtual_processes() )
    {
      throw std::runtime_error( "damaged device state" );
    }
    if ( not vm.is_local_vp( vp ) )
    {
      continue;  // another process's copy of the device
    }
    const size_t tid = vm.vp_to_thread( vp );
    auto* g = dynamic_cast< nest::poisson_generator* >( nm.get_node_or_proxy( node_id, tid ) );
    if ( not g )
    {
      throw std::runtime_error( "node " + std::to_string( node_id ) + " is no poisson_generator here" );
    }
    std::poisson_distribution< unsigned long > dist;
    in >> dist;
    if ( in.fail() )
    {
      throw std::runtime_error( "damaged device state" );
    }
    ( g->*reach( PoissonV() ) ).poisson_dist_.*reach( PoissonDist() ) = dist;
  }
}

// The first row source[k] -> target[k] that is not between two neurons of this process
// (threads: neuron_threads()), or -1.
long
first_not_between_neurons( const int32_t* source, const int32_t* target, const long n, const std::vector< int >& threads )
{
  const long size = static_cast< long >( threads.size() );
  for ( long k = 0; k < n; ++k )
  {
    if ( source[ k ] < 1 or source[ k ] >= size or target[ k ] < 1 or target[ k ] >= size or threads[ source[ k ] ] < 0
      or threads[ target[ k ] ] < 0 )
    {
      return k;
    }
  }
  return -1;
}

}  // namespace

extern "C"
{

  const char*
  einet_state_built_for()
  {
    return EINET_BUILT_FOR;
  }

  // Per node id: the length of its hidden-state record in doubles (0: not local here, or a
  // model without an accessor). Returns the number of nodes with a record, or -1.
  long
  einet_state_node_sizes( const long* ids, long n, long* sizes, char* err, size_t errlen )
  {
    return guarded( err, errlen, [ & ]() -> long {
      over_parts( n,
        [ & ]( const long lo, const long hi )
        {
          for ( long k = lo; k < hi; ++k )
          {
            nest::Node* node = local_node( ids[ k ] );
            sizes[ k ] = node ? static_cast< long >( record_size( node ) ) : 0;
          }
        } );
      return static_cast< long >( std::count_if( sizes, sizes + n, []( const long size ) { return size > 0; } ) );
    } );
  }

  // The records of the nodes: node k's at out[offsets[k] ... offsets[k + 1]) (sizes as
  // einet_state_node_sizes gave them). Returns 0, or -1.
  long
  einet_state_node_read( const long* ids, long n, const long* offsets, double* out, char* err, size_t errlen )
  {
    return guarded( err, errlen, [ & ]() -> long {
      over_parts( n,
        [ & ]( const long lo, const long hi )
        {
          for ( long k = lo; k < hi; ++k )
          {
            if ( offsets[ k + 1 ] == offsets[ k ] )
            {
              continue;
            }
            nest::Node* node = local_node( ids[ k ] );
            if ( not node or static_cast< long >( record_size( node ) ) != offsets[ k + 1 ] - offsets[ k ] )
            {
              throw std::runtime_error( "node " + std::to_string( ids[ k ] ) + " changed while read" );
            }
            read_record( node, out + offsets[ k ] );
          }
        } );
      return 0;
    } );
  }

  // Write records back (the layout of einet_state_node_read); a node with an empty record is
  // left alone. Returns the number written, or -1.
  long
  einet_state_node_write( const long* ids, long n, const long* offsets, const double* in, char* err, size_t errlen )
  {
    return guarded( err, errlen, [ & ]() -> long {
      long written = 0;
      for ( long k = 0; k < n; ++k )
      {
        if ( offsets[ k + 1 ] == offsets[ k ] )
        {
          continue;
        }
        nest::Node* node = local_node( ids[ k ] );
        if ( not node )
        {
          say( err, errlen, "node " + std::to_string( ids[ k ] ) + " is not local here" );
          return -1;
        }
        const std::string problem = write_record( node, in + offsets[ k ], static_cast< size_t >( offsets[ k + 1 ] - offsets[ k ] ) );
        if ( not problem.empty() )
        {
          say( err, errlen, "node " + std::to_string( ids[ k ] ) + ": " + problem );
          return -1;
        }
        ++written;
      }
      return written;
    } );
  }

  // The number of enabled local connections of an STDP model, or -1.
  long
  einet_state_stdp_count( const char* model, char* err, size_t errlen )
  {
    return guarded( err, errlen, [ & ]() -> long {
      return stdp_count( model );
    } );
  }

  // Source, target, Kplus and t_lastspike of every enabled local connection of the model.
  long
  einet_state_stdp_read( const char* model, long* source, long* target, double* kplus, double* tlast, long n, char* err, size_t errlen )
  {
    return guarded( err, errlen, [ & ]() -> long {
      const auto rows = stdp_rows( model );
      if ( static_cast< long >( rows.size() ) != n )
      {
        say( err, errlen, "the number of connections changed" );
        return -1;
      }
      for ( long k = 0; k < n; ++k )
      {
        source[ k ] = rows[ k ].source;
        target[ k ] = rows[ k ].target;
        kplus[ k ] = rows[ k ].kplus ? *rows[ k ].kplus : 0.0;
        tlast[ k ] = *rows[ k ].tlast;
      }
      return n;
    } );
  }

  // Set Kplus and t_lastspike of the local connections of the model, each matched by its
  // source and target to a stored row (repeated pairs in their order). Every local
  // connection must find a row, and every row to and from neurons a connection; a row with
  // NaN is matched but not written. Returns the number set, or -1.
  long
  einet_state_stdp_write( const char* model, const int32_t* source, const int32_t* target, const double* kplus, const double* tlast, const int64_t* runs, long n_runs, const uint8_t* covered, long n_covered, long n, char* err, size_t errlen )
  {
    return guarded( err, errlen, [ & ]() -> long {
      // stored rows and this kernel's connections, each ordered by (source, target) and then
      // by their own order: the k-th of a pair takes the k-th stored row of it
      const auto key = []( const long src, const long tgt ) { return ( static_cast< uint64_t >( src ) << 32 ) | static_cast< uint64_t >( tgt ); };
      // rows to or from a device are in no connector: left out
      const std::vector< int > threads = neuron_threads();
      const OrderedRows all { source, target, kplus, tlast, runs, n_runs, covered, n_covered, n, &threads };
      all.check();
      std::vector< std::pair< uint64_t, long > > wanted;
      wanted.reserve( n );
      for ( long k = 0; k < n; ++k )
      {
        if ( all.thread_of( k ) >= 0 )
        {
          wanted.push_back( { key( source[ k ], target[ k ] ), k } );
        }
      }
      std::sort( wanted.begin(), wanted.end() );
      const std::vector< StdpRow > rows = stdp_rows( model );
      std::vector< std::pair< uint64_t, long > > here( rows.size() );
      for ( size_t k = 0; k < rows.size(); ++k )
      {
        here[ k ] = { key( rows[ k ].source, rows[ k ].target ), static_cast< long >( k ) };
      }
      std::sort( here.begin(), here.end() );
      if ( here.size() != wanted.size() )
      {
        say( err, errlen, std::to_string( here.size() ) + " local connections, " + std::to_string( wanted.size() ) + " stored" );
        return -1;
      }
      long set = 0;
      long run = -1;
      for ( size_t k = 0; k < here.size(); ++k )
      {
        if ( here[ k ].first != wanted[ k ].first )
        {
          const StdpRow& row = rows[ here[ k ].second ];
          say( err, errlen, "connection " + std::to_string( row.source ) + " -> " + std::to_string( row.target ) + " has no stored state" );
          return -1;
        }
        const long w = wanted[ k ].second;
        const long v = all.value_at( w, run );
        if ( all.written( w, v ) )
        {
          if ( double* to = rows[ here[ k ].second ].kplus )
          {
            *to = kplus[ v ];
          }
          *rows[ here[ k ].second ].tlast = tlast[ v ];
          ++set;
        }
      }
      return set;
    } );
  }

  // Set Kplus and t_lastspike of the model's connections from rows in the order the restore
  // connected them (before NEST's next Prepare sorts them): row k goes to the next connection
  // of its target's thread. Rows to or from a device are skipped (in no connector). The rows
  // may come a block at a time, in order: ``cursors`` (one per thread, 0 before the first
  // block) says where each thread's connections of the block start and is moved on; ``last``
  // says no connection follows this block. Returns the rows written, -2 when the connectors
  // do not hold the rows in that order (nothing is then known to be written right: match by
  // source and target instead), or -1.
  long
  einet_state_stdp_write_ordered( const char* model, const int32_t* source, const int32_t* target, const double* kplus, const double* tlast, const int64_t* runs, long n_runs, const uint8_t* covered, long n_covered, long n, int64_t* cursors, long n_cursors, long last, char* err, size_t errlen )
  {
    return guarded( err, errlen, [ & ]() -> long {
      const std::vector< int > threads = neuron_threads();
      const OrderedRows rows { source, target, kplus, tlast, runs, n_runs, covered, n_covered, n, &threads };
      rows.check();
      const long done = stdp_write_ordered( model, rows, cursors, n_cursors, last != 0 );
      if ( done == ORDER_DIFFERS )
      {
        say( err, errlen, "the connections are not in the order of the stored rows" );
      }
      return done;
    } );
  }

  // Whether every row source[k] -> target[k] is between two neurons of this process (what
  // einet_state_connect and the STDP writers take): 1 or 0, or -1.
  long
  einet_state_between_neurons( const int32_t* source, const int32_t* target, long n, char* err, size_t errlen )
  {
    return guarded( err, errlen, [ & ]() -> long { return first_not_between_neurons( source, target, n, neuron_threads() ) < 0; } );
  }

  // Connect row k: source[k] -> target[k] with weight[k] and delay[k] (NaN, or no array: the
  // model's default), in row order, as NEST's connect_arrays does (each connection through
  // ConnectionManager::connect, its checks and its tables), but from threads of its own that
  // each take only their targets' rows: connect_arrays' threads each walk every row and look
  // its target up. Every row must be between two neurons of this process (checked before
  // anything is connected). Not under MPI, never during a Simulate. Returns n, or -1.
  long
  einet_state_connect( const char* model, const int32_t* source, const int32_t* target, const double* weight, const double* delay, long n, char* err, size_t errlen )
  {
    return guarded( err, errlen, [ & ]() -> long {
      auto& kernel = nest::kernel();
      if ( kernel.mpi_manager.get_num_processes() != 1 )
      {
        throw std::runtime_error( "connecting by the accessor needs one process" );
      }
      const nest::synindex syn_id = kernel.model_manager.get_synapse_model_id( model );
      kernel.node_manager.update_thread_local_node_data();
      const std::vector< int > threads = neuron_threads();
      const long size = static_cast< long >( threads.size() );
      const long k = first_not_between_neurons( source, target, n, threads );
      if ( k >= 0 )
      {
        throw std::runtime_error( "row " + std::to_string( k ) + " (" + std::to_string( source[ k ] ) + " -> "
          + std::to_string( target[ k ] ) + ") is not between two neurons of this process" );
      }
      std::vector< nest::Node* > node( size, nullptr );
      for ( long id = 1; id < size; ++id )
      {
        if ( threads[ id ] >= 0 )
        {
          node[ id ] = kernel.node_manager.get_node_or_proxy( id, threads[ id ] );
        }
      }
      kernel.connection_manager.set_connections_have_changed();
      // One std::thread per NEST thread, each making the connections into its own neurons,
      // as connect_arrays' OpenMP threads do. What they share in NEST's connect is read only
      // once the kernel has simulated (the clock a restore advances): then NEST checks each
      // delay against fixed extrema (outside an OpenMP region every caller is "thread 0" to
      // NEST, and before the first Simulate connect may move thread 0's delay extrema).
      const size_t workers = kernel.simulation_manager.has_been_simulated() ? kernel.vp_manager.get_num_threads() : 1;
      std::vector< std::string > problems( workers );
      std::vector< std::thread > running;
      for ( size_t w = 0; w < workers; ++w )
      {
        running.emplace_back(
          [ &, w ]
          {
            try
            {
              const Dictionary none;
              const double unset = std::numeric_limits< double >::quiet_NaN();  // NEST's connect: the default
              for ( long k = 0; k < n; ++k )
              {
                const int tid = threads[ target[ k ] ];
                if ( workers == 1 or static_cast< size_t >( tid ) == w )
                {
                  kernel.connection_manager.connect( source[ k ], node[ target[ k ] ], tid, syn_id, none, delay ? delay[ k ] : unset, weight ? weight[ k ] : unset );
                }
              }
            }
            catch ( const std::exception& e )
            {
              problems[ w ] = e.what();
            }
          } );
      }
      for ( auto& r : running )
      {
        r.join();
      }
      for ( const auto& problem : problems )
      {
        if ( not problem.empty() )
        {
          throw std::runtime_error( problem );
        }
      }
      return n;
    } );
  }

  // How many of the n rows (a read-back sample) a connection of the model has: the same
  // source and target, and bit for bit the same Kplus and t_lastspike. Returns it, or -1.
  long
  einet_state_stdp_sample( const char* model, const int32_t* source, const int32_t* target, const double* kplus, const double* tlast, long n, char* err, size_t errlen )
  {
    return guarded( err, errlen, [ & ]() -> long {
      std::vector< char > wanted( nest::kernel().node_manager.size() + 1, 0 );
      for ( long k = 0; k < n; ++k )
      {
        if ( source[ k ] > 0 and source[ k ] < static_cast< long >( wanted.size() ) )
        {
          wanted[ source[ k ] ] = 1;
        }
      }
      const std::vector< Hit > hits = stdp_hits( model, wanted );
      long found = 0;
      for ( long k = 0; k < n; ++k )
      {
        found += std::any_of( hits.begin(), hits.end(), [ & ]( const Hit& h ) {
          return h.source == source[ k ] and h.target == target[ k ] and std::memcmp( &h.kplus, &kplus[ k ], sizeof( double ) ) == 0
            and std::memcmp( &h.tlast, &tlast[ k ], sizeof( double ) ) == 0;
        } );
      }
      return found;
    } );
  }

  // A random generator's state as text into out (which: 0 rank-synced, 1 vp-synced of
  // thread tid, 2 vp-specific of thread tid). Returns its length (it fits if < cap), or -1.
  long
  einet_state_rng_read( long which, long tid, char* out, size_t cap, char* err, size_t errlen )
  {
    return guarded( err, errlen, [ & ]() -> long {
      const std::string text = rng_text( rng_of( which, tid ) );
      if ( text.size() < cap )
      {
        std::memcpy( out, text.c_str(), text.size() + 1 );
      }
      return static_cast< long >( text.size() );
    } );
  }

  long
  einet_state_rng_write( long which, long tid, const char* text, char* err, size_t errlen )
  {
    return guarded( err, errlen, [ & ]() -> long {
      set_rng_text( rng_of( which, tid ), text );
      return 0;
    } );
  }

  // The number of emissions in this process's spike registers (spikes in transit), or -1.
  long
  einet_state_transit_count( char* err, size_t errlen )
  {
    return guarded( err, errlen, [ & ]() -> long {
      return static_cast< long >( emissions().size() );
    } );
  }

  // This process's emissions: source node id, lag, multiplicity; thread by thread, each in
  // the order its thread made them. Returns n, or -1.
  long
  einet_state_transit_read( long* source, long* lag, long* count, long n, char* err, size_t errlen )
  {
    return guarded( err, errlen, [ & ]() -> long {
      const auto found = emissions();
      if ( static_cast< long >( found.size() ) != n )
      {
        say( err, errlen, "the number of spikes in transit changed" );
        return -1;
      }
      for ( long k = 0; k < n; ++k )
      {
        source[ k ] = found[ k ].source;
        lag[ k ] = found[ k ].lag;
        count[ k ] = found[ k ].count;
      }
      return n;
    } );
  }

  // Write stored emissions (every process's: each writes its own neurons', see
  // write_emissions) into the spike registers; call einet_state_transit_gather next, on every
  // process. Returns the emissions written here, or -1.
  long
  einet_state_transit_write( const long* source, const long* lag, const long* count, long n, char* err, size_t errlen )
  {
    return guarded( err, errlen, [ & ]() -> long {
      return write_emissions( source, lag, count, n );
    } );
  }

  // At the end of an interval NEST has already gathered the registers into the receive
  // buffers, which the next interval begins by delivering: gather them as it did (a
  // collective over the MPI processes: every one must call it). Inside an interval the
  // registers are where the spikes wait. Returns 1 if gathered, 0 if not, or -1.
  long
  einet_state_transit_gather( char* err, size_t errlen )
  {
    return guarded( err, errlen, [ & ]() -> long {
      auto& kernel = nest::kernel();
      const auto& sim = kernel.simulation_manager;
      if ( sim.get_slice() == 0 or sim.get_from_step() != 0 or not kernel.connection_manager.has_primary_connections() )
      {
        return 0;
      }
      kernel.event_delivery_manager.gather_spike_data();
      return 1;
    } );
  }

  // The virtual process of this process's thread tid, or -1.
  long
  einet_state_thread_vp( long tid, char* err, size_t errlen )
  {
    return guarded( err, errlen, [ & ]() -> long {
      if ( tid < 0 or static_cast< size_t >( tid ) >= nest::kernel().vp_manager.get_num_threads() )
      {
        throw std::runtime_error( "no such thread" );
      }
      return static_cast< long >( nest::kernel().vp_manager.thread_to_vp( static_cast< size_t >( tid ) ) );
    } );
  }

  // The poisson_generators' distribution states as text into out; returns the length (it
  // fits if < cap), or -1.
  long
  einet_state_devices_read( char* out, size_t cap, char* err, size_t errlen )
  {
    return guarded( err, errlen, [ & ]() -> long {
      const std::string text = devices_text();
      if ( text.size() < cap )
      {
        std::memcpy( out, text.c_str(), text.size() + 1 );
      }
      return static_cast< long >( text.size() );
    } );
  }

  long
  einet_state_devices_write( const char* text, char* err, size_t errlen )
  {
    return guarded( err, errlen, [ & ]() -> long {
      set_devices_text( text );
      return 0;
    } );
  }
}
