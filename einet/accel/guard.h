// What einet's C++ libraries share at their boundary with ctypes: an error's text goes back in
// a caller's buffer, and no C++ exception may cross into Python.

#ifndef EINET_GUARD_H
#define EINET_GUARD_H

#include <cstring>
#include <exception>
#include <string>

namespace einet
{

inline void
say( char* err, size_t errlen, const std::string& text )
{
  if ( err and errlen )
  {
    std::strncpy( err, text.c_str(), errlen - 1 );
    err[ errlen - 1 ] = '\0';
  }
}

// body()'s value; a C++ exception becomes -1 with its text in err.
template < typename Body >
long
guarded( char* err, size_t errlen, Body&& body )
{
  try
  {
    return body();
  }
  catch ( const std::exception& e )
  {
    say( err, errlen, e.what() );
  }
  catch ( ... )
  {
    say( err, errlen, "unknown C++ exception" );
  }
  return -1;
}

}  // namespace einet

#endif
