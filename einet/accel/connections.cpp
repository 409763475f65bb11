// einet's bulk connection reader: every local connection of one synapse model, read inside
// the NEST kernel into a column-major array of doubles, one row per connection.
//
// Built against the installed NEST's own headers and linked to its nestkernel_api.so by
// einet/accel/build.py, loaded with ctypes into a process that has imported nest. It reads
// the same dictionary PyNEST's GetStatus of a connection returns (ConnectionManager's
// get_synapse_status), without PyNEST's conversion of every value to a Python object.
//
// NEST keeps its connection tables private. They are reached through the explicit-
// instantiation access rule (an explicit instantiation may name a private member), so this
// file depends on the layout of the NEST it was built for: einet refuses to load it for any
// other nestkernel_api.so and checks its first read in each process against PyNEST.
//
// No OpenMP: a forked process may not open an OpenMP region (its runtime names the parent's
// threads), and a second OpenMP runtime beside NEST's is trouble. One std::thread per NEST
// thread instead, each over that thread's connection tables.

#include <algorithm>
#include <array>
#include <cstdint>
#include <atomic>
#include <cstring>
#include <deque>
#include <exception>
#include <limits>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "connection_id.h"
#include "connection_label.h"
#include "connection_manager.h"
#include "connector_base.h"
#include "dictionary.h"
#include "kernel_manager.h"
#include "source_table.h"
#include "static_synapse.h"
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
#include "target_identifier.h"
#include "target_table_devices.h"
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

template < typename Tag, typename Tag::type Member >
struct Reach
{
  friend typename Tag::type
  reach( Tag )
  {
    return Member;
  }
};

struct Connectors
{
  using type = std::vector< std::vector< nest::ConnectorBase* > > nest::ConnectionManager::*;
  friend type reach( Connectors );
};
template struct Reach< Connectors, &nest::ConnectionManager::connections_ >;

struct Sources
{
  using type = nest::SourceTable nest::ConnectionManager::*;
  friend type reach( Sources );
};
template struct Reach< Sources, &nest::ConnectionManager::source_table_ >;

struct Devices
{
  using type = nest::TargetTableDevices nest::ConnectionManager::*;
  friend type reach( Devices );
};
template struct Reach< Devices, &nest::ConnectionManager::target_table_devices_ >;

struct ToDevices
{
  using type = std::vector< std::vector< std::vector< nest::ConnectorBase* > > > nest::TargetTableDevices::*;
  friend type reach( ToDevices );
};
template struct Reach< ToDevices, &nest::TargetTableDevices::target_to_devices_ >;

struct NodeId
{
  using type = size_t nest::Node::*;
  friend type reach( NodeId );
};
template struct Reach< NodeId, &nest::Node::node_id_ >;

// How many connections ahead of the one being read its target's node id is fetched. A
// connector is sorted by source, so its targets lie all over the heap: a target's id is a
// cache miss per connection once the network's nodes outgrow the caches; asked for ahead,
// those misses overlap.
constexpr size_t LOOK_AHEAD = 16;


const nest::ConnectorBase*
connector_of( const size_t tid, const nest::synindex syn_id )
{
  const auto& connectors = nest::kernel().connection_manager.*reach( Connectors() );
  if ( tid < connectors.size() and syn_id < connectors[ tid ].size() )
  {
    return connectors[ tid ][ syn_id ];
  }
  return nullptr;
}

// The thread's enabled connections of syn_id in the neuron-to-neuron table, each visited with
// its connector: get_connection lists one unless Disconnect disabled it, as GetConnections does.
// The walk stops at the first visit that returns false.
template < typename Visit >
void
each_neuron_connection( const size_t tid, const nest::synindex syn_id, Visit&& visit )
{
  const nest::ConnectorBase* conns = connector_of( tid, syn_id );
  if ( not conns )
  {
    return;
  }
  const nest::SourceTable& sources = nest::kernel().connection_manager.*reach( Sources() );
  std::deque< nest::ConnectionID > one;
  const size_t n = conns->size();
  for ( size_t lcid = 0; lcid < n; ++lcid )
  {
    conns->get_connection( sources.get_node_id( tid, syn_id, lcid ), 0, tid, lcid, nest::UNLABELED_CONNECTION, one );
    if ( not one.empty() )
    {
      const bool go_on = visit( one.back(), conns );
      one.clear();
      if ( not go_on )
      {
        return;
      }
    }
  }
}

// The thread's connections of syn_id to and from devices. NEST's own listing of those to
// devices derives node ids from the calling OpenMP thread, which a std::thread is not: this
// is the same walk with the thread's virtual process named.
std::deque< nest::ConnectionID >
device_connections( const size_t tid, const nest::synindex syn_id )
{
  std::deque< nest::ConnectionID > devices;
  const nest::TargetTableDevices& table = nest::kernel().connection_manager.*reach( Devices() );
  const auto& to_devices = table.*reach( ToDevices() );
  const nest::VPManager& vps = nest::kernel().vp_manager;
  const size_t vp = vps.thread_to_vp( tid );
  const size_t n_vp = vps.get_num_virtual_processes();
  if ( tid < to_devices.size() )
  {
    for ( size_t lid = 0; lid < to_devices[ tid ].size(); ++lid )
    {
      const auto& by_model = to_devices[ tid ][ lid ];
      if ( syn_id < by_model.size() and by_model[ syn_id ] )
      {
        const size_t source = ( lid + static_cast< size_t >( vp == 0 ) ) * n_vp + vp;
        by_model[ syn_id ]->get_all_connections( source, 0, tid, nest::UNLABELED_CONNECTION, devices );
      }
    }
  }
  table.get_connections_from_devices_( 0, 0, tid, syn_id, nest::UNLABELED_CONNECTION, devices );
  return devices;
}

size_t
n_threads()
{
  return nest::kernel().vp_manager.get_num_threads();
}

bool
as_double( const any_type& value, double& out )
{
  if ( const double* d = std::get_if< double >( &value ) )
  {
    out = *d;
  }
  else if ( const long* l = std::get_if< long >( &value ) )
  {
    out = static_cast< double >( *l );
  }
  else if ( const bool* b = std::get_if< bool >( &value ) )
  {
    out = *b ? 1.0 : 0.0;
  }
  else
  {
    return false;
  }
  return true;
}


// -- typed readers ---------------------------------------------------------------------------
// For the models that hold most connections, the values are read straight out of the
// connector's array, skipping the dictionary. Each field is named by its status key; the
// first connection of every thread is read both ways and must agree (else the whole read
// fails, and einet reads through PyNEST).

template < typename ConnectionT >
struct Array
{
  using type = BlockVector< ConnectionT > nest::Connector< ConnectionT >::*;
  friend type reach( Array );
};
template < typename ConnectionT >
struct Field
{
  const char* key;
  double ConnectionT::* member;
};

#define EINET_TYPED( MODEL )                                                                    \
  template struct Reach< Array< nest::MODEL< nest::TargetIdentifierPtrRport > >,               \
    &nest::Connector< nest::MODEL< nest::TargetIdentifierPtrRport > >::C_ >;                     \
  template struct Reach< Array< nest::MODEL< nest::TargetIdentifierIndex > >,                  \
    &nest::Connector< nest::MODEL< nest::TargetIdentifierIndex > >::C_ >;
EINET_TYPED( static_synapse )
EINET_TYPED( stdp_synapse )
EINET_TYPED( stdp_synapse_hom )
EINET_TYPED( stdp_pl_synapse_hom )
EINET_TYPED( tsodyks2_synapse )
EINET_TYPED( tsodyks_synapse )
EINET_TYPED( tsodyks_synapse_hom )
EINET_TYPED( stdp_nn_pre_centered_synapse )
EINET_TYPED( stdp_nn_symm_synapse )
EINET_TYPED( stdp_nn_restr_synapse )
EINET_TYPED( vogels_sprekeler_synapse )

#define EINET_FIELD( MODEL, NAME )                                                                \
  struct MODEL##_##NAME                                                                          \
  {                                                                                              \
    template < typename T >                                                                      \
    struct On                                                                                    \
    {                                                                                            \
      using type = double nest::MODEL< T >::*;                                                   \
      friend type reach( On );                                                                   \
    };                                                                                           \
  };                                                                                             \
  template struct Reach< MODEL##_##NAME::On< nest::TargetIdentifierPtrRport >,                 \
    &nest::MODEL< nest::TargetIdentifierPtrRport >::NAME##_ >;                                   \
  template struct Reach< MODEL##_##NAME::On< nest::TargetIdentifierIndex >,                    \
    &nest::MODEL< nest::TargetIdentifierIndex >::NAME##_ >;
EINET_FIELD( static_synapse, weight )
EINET_FIELD( stdp_synapse_hom, weight )
EINET_FIELD( stdp_synapse_hom, Kplus )
EINET_FIELD( stdp_synapse_hom, t_lastspike )
EINET_FIELD( stdp_synapse, weight )
EINET_FIELD( stdp_synapse, tau_plus )
EINET_FIELD( stdp_synapse, lambda )
EINET_FIELD( stdp_synapse, alpha )
EINET_FIELD( stdp_synapse, mu_plus )
EINET_FIELD( stdp_synapse, mu_minus )
EINET_FIELD( stdp_synapse, Wmax )
EINET_FIELD( stdp_synapse, Kplus )
EINET_FIELD( stdp_synapse, t_lastspike )
EINET_FIELD( stdp_pl_synapse_hom, weight )
EINET_FIELD( stdp_pl_synapse_hom, Kplus )
EINET_FIELD( stdp_pl_synapse_hom, t_lastspike )
EINET_FIELD( tsodyks2_synapse, weight )
EINET_FIELD( tsodyks2_synapse, U )
EINET_FIELD( tsodyks2_synapse, u )
EINET_FIELD( tsodyks2_synapse, x )
EINET_FIELD( tsodyks2_synapse, tau_rec )
EINET_FIELD( tsodyks2_synapse, tau_fac )
EINET_FIELD( tsodyks2_synapse, t_lastspike )
EINET_FIELD( tsodyks_synapse, weight )
EINET_FIELD( tsodyks_synapse, U )
EINET_FIELD( tsodyks_synapse, u )
EINET_FIELD( tsodyks_synapse, x )
EINET_FIELD( tsodyks_synapse, y )
EINET_FIELD( tsodyks_synapse, tau_psc )
EINET_FIELD( tsodyks_synapse, tau_rec )
EINET_FIELD( tsodyks_synapse, tau_fac )
EINET_FIELD( tsodyks_synapse, t_lastspike )
EINET_FIELD( tsodyks_synapse_hom, x )
EINET_FIELD( tsodyks_synapse_hom, y )
EINET_FIELD( tsodyks_synapse_hom, u )
EINET_FIELD( tsodyks_synapse_hom, t_lastspike )
EINET_FIELD( stdp_nn_pre_centered_synapse, weight )
EINET_FIELD( stdp_nn_pre_centered_synapse, tau_plus )
EINET_FIELD( stdp_nn_pre_centered_synapse, lambda )
EINET_FIELD( stdp_nn_pre_centered_synapse, alpha )
EINET_FIELD( stdp_nn_pre_centered_synapse, mu_plus )
EINET_FIELD( stdp_nn_pre_centered_synapse, mu_minus )
EINET_FIELD( stdp_nn_pre_centered_synapse, Wmax )
EINET_FIELD( stdp_nn_pre_centered_synapse, Kplus )
EINET_FIELD( stdp_nn_pre_centered_synapse, t_lastspike )
EINET_FIELD( stdp_nn_symm_synapse, weight )
EINET_FIELD( stdp_nn_symm_synapse, tau_plus )
EINET_FIELD( stdp_nn_symm_synapse, lambda )
EINET_FIELD( stdp_nn_symm_synapse, alpha )
EINET_FIELD( stdp_nn_symm_synapse, mu_plus )
EINET_FIELD( stdp_nn_symm_synapse, mu_minus )
EINET_FIELD( stdp_nn_symm_synapse, Wmax )
EINET_FIELD( stdp_nn_symm_synapse, t_lastspike )
EINET_FIELD( stdp_nn_restr_synapse, weight )
EINET_FIELD( stdp_nn_restr_synapse, tau_plus )
EINET_FIELD( stdp_nn_restr_synapse, lambda )
EINET_FIELD( stdp_nn_restr_synapse, alpha )
EINET_FIELD( stdp_nn_restr_synapse, mu_plus )
EINET_FIELD( stdp_nn_restr_synapse, mu_minus )
EINET_FIELD( stdp_nn_restr_synapse, Wmax )
EINET_FIELD( stdp_nn_restr_synapse, t_lastspike )
EINET_FIELD( vogels_sprekeler_synapse, weight )
EINET_FIELD( vogels_sprekeler_synapse, tau )
EINET_FIELD( vogels_sprekeler_synapse, alpha )
EINET_FIELD( vogels_sprekeler_synapse, eta )
EINET_FIELD( vogels_sprekeler_synapse, Wmax )
EINET_FIELD( vogels_sprekeler_synapse, Kplus )
EINET_FIELD( vogels_sprekeler_synapse, t_lastspike )

#define EINET_F( MODEL, NAME ) Field< nest::MODEL< T > > { #NAME, reach( typename MODEL##_##NAME::template On< T >() ) }

template < typename T >
std::vector< Field< nest::static_synapse< T > > >
fields_of( const nest::static_synapse< T >* )
{
  return { EINET_F( static_synapse, weight ) };
}

template < typename T >
std::vector< Field< nest::stdp_synapse_hom< T > > >
fields_of( const nest::stdp_synapse_hom< T >* )
{
  return { EINET_F( stdp_synapse_hom, weight ), EINET_F( stdp_synapse_hom, Kplus ), EINET_F( stdp_synapse_hom, t_lastspike ) };
}

template < typename T >
std::vector< Field< nest::stdp_synapse< T > > >
fields_of( const nest::stdp_synapse< T >* )
{
  return { EINET_F( stdp_synapse, weight ),
    EINET_F( stdp_synapse, tau_plus ),
    EINET_F( stdp_synapse, lambda ),
    EINET_F( stdp_synapse, alpha ),
    EINET_F( stdp_synapse, mu_plus ),
    EINET_F( stdp_synapse, mu_minus ),
    EINET_F( stdp_synapse, Wmax ),
    EINET_F( stdp_synapse, Kplus ),
    EINET_F( stdp_synapse, t_lastspike ) };
}

template < typename T >
std::vector< Field< nest::stdp_pl_synapse_hom< T > > >
fields_of( const nest::stdp_pl_synapse_hom< T >* )
{
  return { EINET_F( stdp_pl_synapse_hom, weight ), EINET_F( stdp_pl_synapse_hom, Kplus ), EINET_F( stdp_pl_synapse_hom, t_lastspike ) };
}

template < typename T >
std::vector< Field< nest::tsodyks2_synapse< T > > >
fields_of( const nest::tsodyks2_synapse< T >* )
{
  return { EINET_F( tsodyks2_synapse, weight ),
    EINET_F( tsodyks2_synapse, U ),
    EINET_F( tsodyks2_synapse, u ),
    EINET_F( tsodyks2_synapse, x ),
    EINET_F( tsodyks2_synapse, tau_rec ),
    EINET_F( tsodyks2_synapse, tau_fac ),
    EINET_F( tsodyks2_synapse, t_lastspike ) };
}

template < typename T >
std::vector< Field< nest::tsodyks_synapse< T > > >
fields_of( const nest::tsodyks_synapse< T >* )
{
  return { EINET_F( tsodyks_synapse, weight ),
    EINET_F( tsodyks_synapse, U ),
    EINET_F( tsodyks_synapse, u ),
    EINET_F( tsodyks_synapse, x ),
    EINET_F( tsodyks_synapse, y ),
    EINET_F( tsodyks_synapse, tau_psc ),
    EINET_F( tsodyks_synapse, tau_rec ),
    EINET_F( tsodyks_synapse, tau_fac ),
    EINET_F( tsodyks_synapse, t_lastspike ) };
}

template < typename T >
std::vector< Field< nest::tsodyks_synapse_hom< T > > >
fields_of( const nest::tsodyks_synapse_hom< T >* )
{
  return { EINET_F( tsodyks_synapse_hom, x ),
    EINET_F( tsodyks_synapse_hom, y ),
    EINET_F( tsodyks_synapse_hom, u ),
    EINET_F( tsodyks_synapse_hom, t_lastspike ) };
}

template < typename T >
std::vector< Field< nest::stdp_nn_pre_centered_synapse< T > > >
fields_of( const nest::stdp_nn_pre_centered_synapse< T >* )
{
  return { EINET_F( stdp_nn_pre_centered_synapse, weight ),
    EINET_F( stdp_nn_pre_centered_synapse, tau_plus ),
    EINET_F( stdp_nn_pre_centered_synapse, lambda ),
    EINET_F( stdp_nn_pre_centered_synapse, alpha ),
    EINET_F( stdp_nn_pre_centered_synapse, mu_plus ),
    EINET_F( stdp_nn_pre_centered_synapse, mu_minus ),
    EINET_F( stdp_nn_pre_centered_synapse, Wmax ),
    EINET_F( stdp_nn_pre_centered_synapse, Kplus ),
    EINET_F( stdp_nn_pre_centered_synapse, t_lastspike ) };
}

template < typename T >
std::vector< Field< nest::stdp_nn_symm_synapse< T > > >
fields_of( const nest::stdp_nn_symm_synapse< T >* )
{
  return { EINET_F( stdp_nn_symm_synapse, weight ),
    EINET_F( stdp_nn_symm_synapse, tau_plus ),
    EINET_F( stdp_nn_symm_synapse, lambda ),
    EINET_F( stdp_nn_symm_synapse, alpha ),
    EINET_F( stdp_nn_symm_synapse, mu_plus ),
    EINET_F( stdp_nn_symm_synapse, mu_minus ),
    EINET_F( stdp_nn_symm_synapse, Wmax ),
    EINET_F( stdp_nn_symm_synapse, t_lastspike ) };
}

template < typename T >
std::vector< Field< nest::stdp_nn_restr_synapse< T > > >
fields_of( const nest::stdp_nn_restr_synapse< T >* )
{
  return { EINET_F( stdp_nn_restr_synapse, weight ),
    EINET_F( stdp_nn_restr_synapse, tau_plus ),
    EINET_F( stdp_nn_restr_synapse, lambda ),
    EINET_F( stdp_nn_restr_synapse, alpha ),
    EINET_F( stdp_nn_restr_synapse, mu_plus ),
    EINET_F( stdp_nn_restr_synapse, mu_minus ),
    EINET_F( stdp_nn_restr_synapse, Wmax ),
    EINET_F( stdp_nn_restr_synapse, t_lastspike ) };
}

template < typename T >
std::vector< Field< nest::vogels_sprekeler_synapse< T > > >
fields_of( const nest::vogels_sprekeler_synapse< T >* )
{
  return { EINET_F( vogels_sprekeler_synapse, weight ),
    EINET_F( vogels_sprekeler_synapse, tau ),
    EINET_F( vogels_sprekeler_synapse, alpha ),
    EINET_F( vogels_sprekeler_synapse, eta ),
    EINET_F( vogels_sprekeler_synapse, Wmax ),
    EINET_F( vogels_sprekeler_synapse, Kplus ),
    EINET_F( vogels_sprekeler_synapse, t_lastspike ) };
}

// Keys of state NEST keeps but does not report (docs/hidden-state.md): read by the typed
// readers only; a row read through dictionaries has NaN there, and the typed reader's check
// against NEST's status leaves them out.
bool
hidden_key( const std::string& key )
{
  return key == "t_lastspike";
}

// What one output column holds, for a typed reader.
template < typename ConnectionT >
struct Column
{
  enum
  {
    SOURCE,
    TARGET,
    RECEPTOR,
    DELAY,
    MEMBER,
    RUN  // read per run: see run_members
  } kind;
  double ConnectionT::* member;
};

// What a key's array holds: a value per row, float64 or int32 (node ids: half the memory of a
// double, and what the snapshot stores them as); or a value per run of rows (float64).
enum Kind : long
{
  FLOAT64 = 0,
  INT32 = 1,
  PER_RUN = 2
};

// Where one thread's rows go, and what went wrong. A run is rows of this thread whose per-run
// keys hold the same values, bit for bit (the hidden section's STDP rows: a source's
// connections share their Kplus and last spike). Run r of the thread goes to slot first + r of
// each per-run array and of run_start (its first row): a thread's runs never outnumber its rows,
// so they stay in its own slots, and the pages of the slots left unwritten are never touched.
struct alignas( 64 ) Rows
{
  void* const* columns;
  const long* kind;   // per key
  long row;           // next row of this thread
  long end;           // one past this thread's last row
  int64_t* run_start; // null: no per-run key
  long run;           // next run slot of this thread
  std::string problem;
  static constexpr size_t MAX_RUN_KEYS = 4;
  std::vector< size_t > run_keys;                  // the keys read per run, in their order
  std::vector< long > run_index;                   // per key: its place in run_keys, or -1
  std::array< uint64_t, MAX_RUN_KEYS > pending {}; // this row's per-run values (their bits)
  std::array< uint64_t, MAX_RUN_KEYS > last {};    // the current run's
  bool in_run = false;

  Rows( void* const* columns_, const long* kind_, const long first, const long end_, const size_t n_keys, int64_t* run_start_ )
    : columns( columns_ )
    , kind( kind_ )
    , row( first )
    , end( end_ )
    , run_start( run_start_ )
    , run( first )
    , run_index( n_keys, -1 )
  {
    for ( size_t k = 0; k < n_keys; ++k )
    {
      if ( kind[ k ] == PER_RUN )
      {
        run_index[ k ] = static_cast< long >( run_keys.size() );
        run_keys.push_back( k );
      }
    }
    if ( run_keys.size() > MAX_RUN_KEYS )
    {
      problem = "more keys read per run than " + std::to_string( MAX_RUN_KEYS );
    }
    else if ( not run_keys.empty() and not run_start )
    {
      problem = "keys read per run but nowhere to put where runs start";
    }
  }

  void
  put( const size_t k, const double value )
  {
    if ( kind[ k ] == FLOAT64 )
    {
      static_cast< double* >( columns[ k ] )[ row ] = value;
    }
    else if ( kind[ k ] == INT32 )
    {
      static_cast< int32_t* >( columns[ k ] )[ row ] = static_cast< int32_t >( value );
    }
    else
    {
      std::memcpy( &pending[ run_index[ k ] ], &value, sizeof value );
    }
  }

  double
  get( const size_t k, const long at ) const
  {
    return kind[ k ] == INT32 ? static_cast< const int32_t* >( columns[ k ] )[ at ] : static_cast< const double* >( columns[ k ] )[ at ];
  }

  // The row is complete, its per-run values put.
  void
  next_row()
  {
    end_row( pending );
  }

  // The row is complete, its per-run values (bits) in run_keys' order: a new run starts with it
  // if they differ from the run's.
  void
  end_row( const std::array< uint64_t, MAX_RUN_KEYS >& values )
  {
    const size_t n = run_keys.size();
    bool changed = not in_run;
    for ( size_t j = 0; j < n; ++j )
    {
      changed |= values[ j ] != last[ j ];
    }
    if ( n and changed )
    {
      run_start[ run ] = row;
      for ( size_t j = 0; j < n; ++j )
      {
        std::memcpy( static_cast< double* >( columns[ run_keys[ j ] ] ) + run, &values[ j ], sizeof( double ) );
        last[ j ] = values[ j ];
      }
      ++run;
      in_run = true;
    }
    ++row;
  }
};

// Read the neuron-to-neuron connections of one thread through ConnectionT's array, if the
// connector holds ConnectionT and every key is a field it knows. Returns false (nothing read)
// otherwise; the caller then reads through dictionaries.
template < typename ConnectionT >
bool
read_typed( const nest::ConnectorBase* base,
  const size_t tid,
  const nest::synindex syn_id,
  const std::vector< std::string >& keys,
  Rows& rows,
  std::atomic< long >* progress )
{
  const auto* connector = dynamic_cast< const nest::Connector< ConnectionT >* >( base );
  if ( not connector )
  {
    return false;
  }
  const auto known = fields_of( static_cast< const ConnectionT* >( nullptr ) );
  std::vector< Column< ConnectionT > > columns;
  std::vector< double ConnectionT::* > run_members;  // in rows.run_keys' order
  for ( size_t k = 0; k < keys.size(); ++k )
  {
    const std::string& key = keys[ k ];
    if ( rows.kind[ k ] == PER_RUN )
    {
      const auto f = std::find_if( known.begin(), known.end(), [ & ]( const auto& m ) { return key == m.key; } );
      if ( f == known.end() )
      {
        return false;
      }
      run_members.push_back( f->member );
      columns.push_back( { Column< ConnectionT >::RUN, nullptr } );
    }
    else if ( key == "source" )
    {
      columns.push_back( { Column< ConnectionT >::SOURCE, nullptr } );
    }
    else if ( key == "target" )
    {
      columns.push_back( { Column< ConnectionT >::TARGET, nullptr } );
    }
    else if ( key == "receptor" )
    {
      columns.push_back( { Column< ConnectionT >::RECEPTOR, nullptr } );
    }
    else if ( key == "delay" )
    {
      columns.push_back( { Column< ConnectionT >::DELAY, nullptr } );
    }
    else
    {
      const auto f = std::find_if( known.begin(), known.end(), [ & ]( const auto& k ) { return key == k.key; } );
      if ( f == known.end() )
      {
        return false;
      }
      columns.push_back( { Column< ConnectionT >::MEMBER, f->member } );
    }
  }
  const BlockVector< ConnectionT >& array = connector->*reach( Array< ConnectionT >() );
  const nest::SourceTable& sources = nest::kernel().connection_manager.*reach( Sources() );
  const size_t n = array.size();
  const bool wants_target = std::any_of(
    columns.begin(), columns.end(), []( const auto& column ) { return column.kind == Column< ConnectionT >::TARGET; } );
  long since = 0;
  for ( size_t lcid = 0; lcid < n; ++lcid )
  {
    if ( wants_target and lcid + LOOK_AHEAD < n )
    {
      const ConnectionT& ahead = array[ lcid + LOOK_AHEAD ];
      if ( not ahead.is_disabled() )
      {
        __builtin_prefetch( &( ahead.get_target( tid )->*reach( NodeId() ) ) );
      }
    }
    const ConnectionT& c = array[ lcid ];
    if ( c.is_disabled() )
    {
      continue;
    }
    if ( rows.row >= rows.end )
    {
      rows.problem = "NEST listed more connections than it counted";
      return true;
    }
    for ( size_t k = 0; k < columns.size(); ++k )
    {
      switch ( columns[ k ].kind )
      {
      case Column< ConnectionT >::SOURCE:
        rows.put( k, static_cast< double >( sources.get_node_id( tid, syn_id, lcid ) ) );
        break;
      case Column< ConnectionT >::TARGET:
        rows.put( k, static_cast< double >( c.get_target( tid )->get_node_id() ) );
        break;
      case Column< ConnectionT >::RECEPTOR:
        rows.put( k, static_cast< double >( c.get_rport() ) );
        break;
      case Column< ConnectionT >::DELAY:
        rows.put( k, c.get_delay() );
        break;
      case Column< ConnectionT >::MEMBER:
        rows.put( k, c.*( columns[ k ].member ) );
        break;
      case Column< ConnectionT >::RUN:
        break;
      }
    }
    std::array< uint64_t, Rows::MAX_RUN_KEYS > run_values {};
    for ( size_t j = 0; j < run_members.size(); ++j )
    {
      std::memcpy( &run_values[ j ], &( c.*run_members[ j ] ), sizeof( double ) );
    }
    rows.end_row( run_values );
    if ( ++since == 65536 )
    {
      progress->fetch_add( since, std::memory_order_relaxed );
      since = 0;
    }
  }
  progress->fetch_add( since, std::memory_order_relaxed );
  return true;
}

template < typename... ConnectionTs >
struct Models
{
};

// The connection types with a typed reader (and counter): each model with both kinds of
// target, the second its _hpc variant's.
#define EINET_BOTH( MODEL ) nest::MODEL< nest::TargetIdentifierPtrRport >, nest::MODEL< nest::TargetIdentifierIndex >
using TypedModels = Models< EINET_BOTH( static_synapse ),
  EINET_BOTH( stdp_synapse_hom ),
  EINET_BOTH( stdp_synapse ),
  EINET_BOTH( stdp_pl_synapse_hom ),
  EINET_BOTH( stdp_nn_pre_centered_synapse ),
  EINET_BOTH( stdp_nn_symm_synapse ),
  EINET_BOTH( stdp_nn_restr_synapse ),
  EINET_BOTH( vogels_sprekeler_synapse ),
  EINET_BOTH( tsodyks2_synapse ),
  EINET_BOTH( tsodyks_synapse ),
  EINET_BOTH( tsodyks_synapse_hom ) >;

template < typename... ConnectionTs >
bool
read_any_typed( Models< ConnectionTs... >,
  const nest::ConnectorBase* base,
  const size_t tid,
  const nest::synindex syn_id,
  const std::vector< std::string >& keys,
  Rows& rows,
  std::atomic< long >* progress )
{
  return ( read_typed< ConnectionTs >( base, tid, syn_id, keys, rows, progress ) or ... );
}

// Read one thread's rows through dictionaries: one per thread for the neuron-to-neuron table,
// filled again for every connection, so its entries stay where they are and each key is
// looked up once (a new dictionary per connection, as PyNEST makes, costs most of the time);
// NEST's own per-connection dictionary for connections to and from devices (few).
void
read_by_dictionary( const size_t tid,
  const nest::synindex syn_id,
  const std::vector< std::string >& keys,
  const bool neurons,
  Rows& rows,
  std::atomic< long >* progress )
{
  const nest::ConnectionManager& cm = nest::kernel().connection_manager;
  Dictionary scratch;
  std::vector< const any_type* > entry( keys.size(), nullptr );
  long since = 0;
  const auto fill = [ & ]( const Dictionary& status, const size_t source, const bool cached )
  {
    if ( rows.row >= rows.end )
    {
      rows.problem = "NEST listed more connections than it counted";
      return;
    }
    for ( size_t k = 0; k < keys.size(); ++k )
    {
      if ( keys[ k ] == "source" )
      {
        rows.put( k, static_cast< double >( source ) );
        continue;
      }
      const any_type* value = cached ? entry[ k ] : nullptr;
      if ( not value )
      {
        const auto it = status->find( keys[ k ] );
        value = it == status->end() ? nullptr : &it->second.item;
        if ( cached )
        {
          entry[ k ] = value;
        }
      }
      double cell = std::numeric_limits< double >::quiet_NaN();
      if ( not value and hidden_key( keys[ k ] ) )
      {
        rows.put( k, cell );
        continue;
      }
      if ( not value or not as_double( *value, cell ) )
      {
        rows.problem = "connection property " + keys[ k ] + " is missing or not a number";
        return;
      }
      rows.put( k, cell );
    }
    rows.next_row();
    if ( ++since == 4096 )
    {
      progress->fetch_add( since, std::memory_order_relaxed );
      since = 0;
    }
  };
  if ( neurons )
  {
    each_neuron_connection( tid,
      syn_id,
      [ & ]( const nest::ConnectionID& c, const nest::ConnectorBase* conns )
      {
        if ( not rows.problem.empty() )
        {
          return false;
        }
        conns->get_synapse_status( tid, c.get_port(), scratch );
        fill( scratch, c.get_source_node_id(), true );
        return true;
      } );
  }
  for ( const auto& c : device_connections( tid, syn_id ) )
  {
    if ( rows.problem.empty() )
    {
      fill( cm.get_synapse_status( c.get_source_node_id(), c.get_target_node_id(), tid, syn_id, c.get_port() ),
        c.get_source_node_id(),
        false );
    }
  }
  progress->fetch_add( since, std::memory_order_relaxed );
}

// The enabled connections of one thread's neuron-to-neuron table, counted through
// ConnectionT's array if the connector holds ConnectionT (else false).
template < typename ConnectionT >
bool
count_typed( const nest::ConnectorBase* base, long& count )
{
  const auto* connector = dynamic_cast< const nest::Connector< ConnectionT >* >( base );
  if ( not connector )
  {
    return false;
  }
  const BlockVector< ConnectionT >& array = connector->*reach( Array< ConnectionT >() );
  for ( const ConnectionT& c : array )
  {
    count += c.is_disabled() ? 0 : 1;
  }
  return true;
}

template < typename... ConnectionTs >
bool
count_any_typed( Models< ConnectionTs... >, const nest::ConnectorBase* base, long& count )
{
  return ( count_typed< ConnectionTs >( base, count ) or ... );
}

long
count_thread( const size_t tid, const nest::synindex syn_id )
{
  long count = 0;
  const nest::ConnectorBase* base = connector_of( tid, syn_id );
  const bool typed = base and count_any_typed( TypedModels {}, base, count );
  if ( not typed )
  {
    each_neuron_connection( tid, syn_id, [ & ]( const nest::ConnectionID&, const nest::ConnectorBase* )
      {
        ++count;
        return true;
      } );
  }
  return count + static_cast< long >( device_connections( tid, syn_id ).size() );
}

// One thread's rows: typed if it can (and may), else by dictionary. A typed read's first row
// is read again by dictionary and must be equal.
void
read_thread( const size_t tid,
  const nest::synindex syn_id,
  const std::vector< std::string >& keys,
  const bool may_type,
  Rows& rows,
  std::atomic< long >* progress,
  bool& typed )
{
  const long first = rows.row;
  typed = may_type and read_any_typed( TypedModels {}, connector_of( tid, syn_id ), tid, syn_id, keys, rows, progress );
  if ( typed and rows.problem.empty() and rows.row > first )
  {
    std::string problem;
    each_neuron_connection( tid,
      syn_id,
      [ & ]( const nest::ConnectionID& c, const nest::ConnectorBase* conns )
      {
        // the first connection is read again through NEST's dictionary: the walk stops there
        Dictionary status;
        conns->get_synapse_status( tid, c.get_port(), status );
        for ( size_t k = 0; k < keys.size(); ++k )
        {
          double value = static_cast< double >( c.get_source_node_id() );
          if ( hidden_key( keys[ k ] ) )
          {
            continue;
          }
          if ( keys[ k ] != "source" )
          {
            const auto it = status->find( keys[ k ] );
            if ( it == status->end() or not as_double( it->second.item, value ) )
            {
              problem = "typed reader: " + keys[ k ] + " missing";
              return false;
            }
          }
          if ( ( rows.kind[ k ] == INT32 ? static_cast< double >( static_cast< int32_t >( value ) ) : value ) != rows.get( k, first ) )
          {
            problem = "typed reader disagrees with NEST's status on " + keys[ k ];
            return false;
          }
        }
        return false;
      } );
    rows.problem = problem;
  }
  if ( rows.problem.empty() )
  {
    read_by_dictionary( tid, syn_id, keys, not typed, rows, progress );
  }
}

}  // namespace

extern "C"
{

  // The NEST version and nestkernel_api.so hash this library was built for.
  const char*
  einet_built_for()
  {
    return EINET_BUILT_FOR;
  }

  // 1 if connections were made or removed since NEST last built its connection tables (a
  // GetConnections or Simulate builds them), else 0.
  long
  einet_connections_changed()
  {
    return nest::kernel().connection_manager.connections_have_changed() ? 1 : 0;
  }

  // NEST's threads in this process.
  long
  einet_threads()
  {
    return static_cast< long >( n_threads() );
  }

  // Number of enabled local connections of the synapse model, per NEST thread into
  // per_thread, or -1 (err says why).
  long
  einet_count( const char* model, long* per_thread, long n_per_thread, char* err, size_t errlen )
  {
    return guarded( err, errlen, [ & ]() -> long {
      const nest::synindex syn_id = nest::kernel().model_manager.get_synapse_model_id( model );
      const size_t threads = n_threads();
      if ( nest::kernel().connection_manager.is_source_table_cleared() )
      {
        say( err, errlen, "NEST has cleared its source table (keep_source_table is off)" );
        return -1;
      }
      if ( static_cast< long >( threads ) > n_per_thread )
      {
        say( err, errlen, "more NEST threads than expected" );
        return -1;
      }
      std::vector< long > counts( threads, 0 );
      std::vector< std::thread > workers;
      for ( size_t tid = 0; tid < threads; ++tid )
      {
        workers.emplace_back(
          [ &counts, tid, syn_id ] { counts[ tid ] = count_thread( tid, syn_id ); } );
      }
      for ( auto& w : workers )
      {
        w.join();
      }
      long total = 0;
      for ( size_t tid = 0; tid < threads; ++tid )
      {
        per_thread[ tid ] = counts[ tid ];
        total += counts[ tid ];
      }
      return total;
    } );
  }

  // The source and target of one enabled local connection of the model (the first found):
  // 1, or 0 if there is none, or -1 (err says why).
  long
  einet_first( const char* model, long* source, long* target, char* err, size_t errlen )
  {
    return guarded( err, errlen, [ & ]() -> long {
      const nest::synindex syn_id = nest::kernel().model_manager.get_synapse_model_id( model );
      const nest::SourceTable& sources = nest::kernel().connection_manager.*reach( Sources() );
      for ( size_t tid = 0; tid < n_threads(); ++tid )
      {
        bool found = false;
        if ( const nest::ConnectorBase* conns = connector_of( tid, syn_id ) )
        {
          std::deque< nest::ConnectionID > one;
          for ( size_t lcid = 0; lcid < conns->size() and one.empty(); ++lcid )
          {
            conns->get_connection( sources.get_node_id( tid, syn_id, lcid ), 0, tid, lcid, nest::UNLABELED_CONNECTION, one );
          }
          if ( not one.empty() )
          {
            found = true;
            *source = one.front().get_source_node_id();
            *target = one.front().get_target_node_id();
          }
        }
        if ( not found )
        {
          const auto devices = device_connections( tid, syn_id );
          if ( not devices.empty() )
          {
            found = true;
            *source = devices.front().get_source_node_id();
            *target = devices.front().get_target_node_id();
          }
        }
        if ( found )
        {
          return 1;
        }
      }
      return 0;
    } );
  }

  // Read keys of every enabled local connection of the model into columns, one array of rows
  // elements per key of the kind kind[k] (Kind): NEST thread tid's connections go to rows
  // [first[tid], first[tid] + per_thread[tid]), counts as einet_count gave them; its runs of
  // the PER_RUN keys (if any: then run_start has rows elements) to the slots from first[tid]
  // on, run_count[tid] of them. done is raised as rows are read (for progress); typed_threads
  // is set to the number of threads read by a typed reader (0 if may_type is 0). Returns the
  // rows read, or -1 (err says why).
  long
  einet_read( const char* model,
    const char** keys,
    long n_keys,
    const long* first,
    const long* per_thread,
    void* const* columns,
    const long* kind,
    long rows,
    int64_t* run_start,
    long* run_count,
    long may_type,
    long* done,
    long* typed_threads,
    char* err,
    size_t errlen )
  {
    return guarded( err, errlen, [ & ]() -> long {
      const nest::synindex syn_id = nest::kernel().model_manager.get_synapse_model_id( model );
      const size_t threads = n_threads();
      const std::vector< std::string > names( keys, keys + n_keys );
      std::vector< Rows > parts;
      parts.reserve( threads );
      for ( size_t tid = 0; tid < threads; ++tid )
      {
        if ( first[ tid ] < 0 or per_thread[ tid ] < 0 or first[ tid ] + per_thread[ tid ] > rows )
        {
          say( err, errlen, "rows out of range" );
          return -1;
        }
        parts.emplace_back( columns, kind, first[ tid ], first[ tid ] + per_thread[ tid ], names.size(), run_start );
        if ( not parts.back().problem.empty() )
        {
          say( err, errlen, parts.back().problem );
          return -1;
        }
      }
      auto* progress = reinterpret_cast< std::atomic< long >* >( done );
      std::vector< char > typed( threads, 0 );
      std::vector< std::thread > workers;
      for ( size_t tid = 0; tid < threads; ++tid )
      {
        workers.emplace_back(
          [ &, tid ]
          {
            bool used = false;
            try
            {
              read_thread( tid, syn_id, names, may_type != 0, parts[ tid ], progress, used );
            }
            catch ( const std::exception& e )
            {
              parts[ tid ].problem = e.what();
            }
            catch ( ... )
            {
              parts[ tid ].problem = "unknown C++ exception";
            }
            typed[ tid ] = used;
          } );
      }
      for ( auto& w : workers )
      {
        w.join();
      }
      long total = 0;
      *typed_threads = 0;
      for ( size_t tid = 0; tid < threads; ++tid )
      {
        if ( parts[ tid ].problem.empty() and parts[ tid ].row != parts[ tid ].end )
        {
          parts[ tid ].problem = "NEST listed fewer connections than it counted";
        }
        if ( not parts[ tid ].problem.empty() )
        {
          say( err, errlen, parts[ tid ].problem );
          return -1;
        }
        total += per_thread[ tid ];
        *typed_threads += typed[ tid ];
        run_count[ tid ] = parts[ tid ].run - first[ tid ];
      }
      return total;
    } );
  }
}
