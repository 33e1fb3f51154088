// dns_types.h: the DNS numbers (RR types, class IN, response codes) and
// type and class names, below both the resolver's codec (dns/) and the places that
// only name them: the decision layer's query check and the event formats.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace egressd::dns {

inline constexpr uint16_t kTypeA = 1;
inline constexpr uint16_t kTypeNS = 2;
inline constexpr uint16_t kTypeCNAME = 5;
inline constexpr uint16_t kTypeSOA = 6;
inline constexpr uint16_t kTypePTR = 12;
inline constexpr uint16_t kTypeMX = 15;
inline constexpr uint16_t kTypeTXT = 16;
inline constexpr uint16_t kTypeAAAA = 28;
inline constexpr uint16_t kTypeSRV = 33;
inline constexpr uint16_t kTypeDNAME = 39;
inline constexpr uint16_t kTypeOPT = 41;
inline constexpr uint16_t kTypeSVCB = 64;
inline constexpr uint16_t kTypeHTTPS = 65;
inline constexpr uint16_t kTypeTSIG = 250;
inline constexpr uint16_t kTypeCAA = 257;
inline constexpr uint16_t kClassIN = 1;

inline constexpr uint16_t kRcodeNoError = 0;
inline constexpr uint16_t kRcodeFormErr = 1;
inline constexpr uint16_t kRcodeServFail = 2;
inline constexpr uint16_t kRcodeNxDomain = 3;
inline constexpr uint16_t kRcodeNotImp = 4;
inline constexpr uint16_t kRcodeRefused = 5;

inline constexpr size_t kMaxLabelBytes = 63;  // RFC 1035 2.3.4

// "A", "HTTPS", ... or "TYPE65280" (RFC 3597), for events and logs.
inline std::string type_name(uint16_t type) {
  switch (type) {
    case 1: return "A";
    case 2: return "NS";
    case 5: return "CNAME";
    case 6: return "SOA";
    case 12: return "PTR";
    case 13: return "HINFO";
    case 15: return "MX";
    case 16: return "TXT";
    case 28: return "AAAA";
    case 33: return "SRV";
    case 35: return "NAPTR";
    case 39: return "DNAME";
    case 41: return "OPT";
    case 43: return "DS";
    case 46: return "RRSIG";
    case 47: return "NSEC";
    case 48: return "DNSKEY";
    case 50: return "NSEC3";
    case 64: return "SVCB";
    case 65: return "HTTPS";
    case 99: return "SPF";
    case 251: return "IXFR";
    case 252: return "AXFR";
    case 255: return "ANY";
    case 256: return "URI";
    case 257: return "CAA";
    default: return "TYPE" + std::to_string(type);
  }
}

// "IN", "CH", "HS", "NONE", "ANY", else "CLASSn" (RFC 3597).
inline std::string class_name(uint16_t klass) {
  switch (klass) {
    case 1: return "IN";
    case 3: return "CH";
    case 4: return "HS";
    case 254: return "NONE";
    case 255: return "ANY";
    default: return "CLASS" + std::to_string(klass);
  }
}

}  // namespace egressd::dns
