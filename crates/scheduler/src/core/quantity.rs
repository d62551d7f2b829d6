//! Exact parsing of Kubernetes quantities ("100m", "1.5Gi", "2e3") into integers.

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
#[error("invalid quantity {0:?}")]
pub struct QuantityError(pub String);

/// A parsed quantity: `mantissa * 10^exp10 * 2^exp2`.
struct Parsed {
    negative: bool,
    mantissa: i128,
    exp10: i32,
    exp2: u32,
}

fn parse(text: &str) -> Result<Parsed, QuantityError> {
    let err = || QuantityError(text.to_string());
    let s = text.trim();
    let (negative, s) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let number_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(number_end);
    if number.is_empty() || number == "." {
        return Err(err());
    }
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    let mut mantissa: i128 = 0;
    for c in int_part.bytes().chain(frac_part.bytes()) {
        if !c.is_ascii_digit() {
            return Err(err());
        }
        mantissa = mantissa
            .checked_mul(10)
            .and_then(|m| m.checked_add(i128::from(c - b'0')))
            .ok_or_else(err)?;
    }
    let mut exp10 = -(frac_part.len() as i32);
    let mut exp2 = 0;
    match suffix {
        "" => {}
        "n" => exp10 -= 9,
        "u" => exp10 -= 6,
        "m" => exp10 -= 3,
        "k" => exp10 += 3,
        "M" => exp10 += 6,
        "G" => exp10 += 9,
        "T" => exp10 += 12,
        "P" => exp10 += 15,
        "E" => exp10 += 18,
        "Ki" => exp2 = 10,
        "Mi" => exp2 = 20,
        "Gi" => exp2 = 30,
        "Ti" => exp2 = 40,
        "Pi" => exp2 = 50,
        "Ei" => exp2 = 60,
        other => {
            // Decimal exponent form: "1e3", "5E-2".
            let rest = other
                .strip_prefix('e')
                .or_else(|| other.strip_prefix('E'))
                .ok_or_else(err)?;
            let exponent: i32 = rest.parse().map_err(|_| err())?;
            if exponent.abs() > 40 {
                return Err(err());
            }
            exp10 += exponent;
        }
    }
    Ok(Parsed {
        negative,
        mantissa,
        exp10,
        exp2,
    })
}

/// Value scaled by `10^scale`, rounded up (away from zero for positives) like upstream's
/// `Quantity.Value()` (scale 0) and `MilliValue()` (scale 3). Saturates at i64 bounds.
fn scaled(text: &str, scale: i32) -> Result<i64, QuantityError> {
    let p = parse(text)?;
    let mut value: i128 = p.mantissa;
    let saturate = |negative: bool| if negative { i64::MIN } else { i64::MAX };
    value = match value.checked_shl(p.exp2) {
        Some(v) if v >> p.exp2 == value => v,
        _ => return Ok(saturate(p.negative)),
    };
    let exp = p.exp10 + scale;
    if exp >= 0 {
        for _ in 0..exp {
            value = match value.checked_mul(10) {
                Some(v) => v,
                None => return Ok(saturate(p.negative)),
            };
        }
    } else {
        let mut divisor: i128 = 1;
        for _ in 0..(-exp) {
            divisor = match divisor.checked_mul(10) {
                Some(d) => d,
                None => {
                    // Anything divided by more than 10^38 rounds up to 1 (or is 0).
                    return Ok(if value == 0 {
                        0
                    } else if p.negative {
                        -1
                    } else {
                        1
                    });
                }
            };
        }
        value = (value + divisor - 1) / divisor;
    }
    let value = if p.negative { -value } else { value };
    Ok(i64::try_from(value).unwrap_or(saturate(p.negative)))
}

/// Integer value, rounded up (bytes for memory, count for pods).
pub fn value(text: &str) -> Result<i64, QuantityError> {
    scaled(text, 0)
}

/// Value in thousandths, rounded up (millicores for cpu).
pub fn milli_value(text: &str) -> Result<i64, QuantityError> {
    scaled(text, 3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_suffixes() {
        assert_eq!(milli_value("100m").unwrap(), 100);
        assert_eq!(milli_value("1.5").unwrap(), 1500);
        assert_eq!(milli_value("2").unwrap(), 2000);
        assert_eq!(value("1Ki").unwrap(), 1024);
        assert_eq!(value("1.5Gi").unwrap(), 1_610_612_736);
        assert_eq!(value("2k").unwrap(), 2000);
        assert_eq!(value("1e3").unwrap(), 1000);
        assert_eq!(value("128974848").unwrap(), 128_974_848);
        assert_eq!(milli_value("1u").unwrap(), 1, "rounds up");
        assert_eq!(value("100m").unwrap(), 1, "rounds up");
        assert_eq!(value("-1").unwrap(), -1);
    }

    #[test]
    fn rejects_garbage() {
        assert!(value("").is_err());
        assert!(value("abc").is_err());
        assert!(value("1Xi").is_err());
        assert!(value("1.2.3").is_err());
    }
}
