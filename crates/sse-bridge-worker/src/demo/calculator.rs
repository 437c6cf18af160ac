//! The demo agent's calculator tool: finds an arithmetic expression in free
//! text and evaluates it (`+ - * / % ^`, parentheses, unary minus, decimals).

/// Why an expression has no value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CalcError {
    #[error("division by zero")]
    DivisionByZero,
    #[error("malformed expression at position {0}")]
    Syntax(usize),
    #[error("the result is not a finite number")]
    NotFinite,
}

/// The longest run of arithmetic characters in `text` that has a digit and
/// an operator, e.g. `"What is 2+3?"` → `"2+3"`.
pub fn find_expression(text: &str) -> Option<&str> {
    let is_arith = |c: char| c.is_ascii_digit() || "+-*/%^(). ".contains(c);
    let mut best: Option<&str> = None;
    let mut start = None;
    for (i, c) in text
        .char_indices()
        .chain(std::iter::once((text.len(), '\0')))
    {
        match (is_arith(c), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                let candidate = text[s..i].trim().trim_end_matches('.').trim();
                let has_digit = candidate.contains(|c: char| c.is_ascii_digit());
                let has_op = candidate.contains(|c: char| "+-*/%^".contains(c));
                if has_digit && has_op && best.is_none_or(|b| candidate.len() > b.len()) {
                    best = Some(candidate);
                }
                start = None;
            }
            _ => {}
        }
    }
    best
}

/// Evaluates an arithmetic expression.
pub fn evaluate(expression: &str) -> Result<f64, CalcError> {
    let mut parser = Parser {
        bytes: expression.as_bytes(),
        pos: 0,
    };
    let value = parser.sum()?;
    parser.skip_spaces();
    if parser.pos != parser.bytes.len() {
        return Err(CalcError::Syntax(parser.pos));
    }
    if !value.is_finite() {
        return Err(CalcError::NotFinite);
    }
    Ok(value)
}

/// Renders a result the way a person writes it: `5`, `2.5`, `0.333333333333`.
pub fn format_number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        let text = format!("{value:.12}");
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

/// Recursive descent: sum := product (('+'|'-') product)*,
/// product := power (('*'|'/'|'%') power)*, power := unary ('^' power)?,
/// unary := '-' unary | atom, atom := number | '(' sum ')'.
struct Parser<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn sum(&mut self) -> Result<f64, CalcError> {
        let mut value = self.product()?;
        while let Some(op) = self.eat_any(b"+-") {
            let rhs = self.product()?;
            value = if op == b'+' { value + rhs } else { value - rhs };
        }
        Ok(value)
    }

    fn product(&mut self) -> Result<f64, CalcError> {
        let mut value = self.power()?;
        while let Some(op) = self.eat_any(b"*/%") {
            let rhs = self.power()?;
            if op != b'*' && rhs == 0.0 {
                return Err(CalcError::DivisionByZero);
            }
            value = match op {
                b'*' => value * rhs,
                b'/' => value / rhs,
                _ => value % rhs,
            };
        }
        Ok(value)
    }

    fn power(&mut self) -> Result<f64, CalcError> {
        let base = self.unary()?;
        if self.eat_any(b"^").is_some() {
            return Ok(base.powf(self.power()?));
        }
        Ok(base)
    }

    fn unary(&mut self) -> Result<f64, CalcError> {
        if self.eat_any(b"-").is_some() {
            return Ok(-self.unary()?);
        }
        self.atom()
    }

    fn atom(&mut self) -> Result<f64, CalcError> {
        self.skip_spaces();
        if self.eat_any(b"(").is_some() {
            let value = self.sum()?;
            return match self.eat_any(b")") {
                Some(_) => Ok(value),
                None => Err(CalcError::Syntax(self.pos)),
            };
        }
        let start = self.pos;
        while self.pos < self.bytes.len()
            && (self.bytes[self.pos].is_ascii_digit() || self.bytes[self.pos] == b'.')
        {
            self.pos += 1;
        }
        std::str::from_utf8(&self.bytes[start..self.pos])
            .ok()
            .and_then(|digits| digits.parse().ok())
            .ok_or(CalcError::Syntax(start))
    }

    fn eat_any(&mut self, ops: &[u8]) -> Option<u8> {
        self.skip_spaces();
        let byte = *self.bytes.get(self.pos)?;
        ops.contains(&byte).then(|| {
            self.pos += 1;
            byte
        })
    }

    fn skip_spaces(&mut self) {
        while self.bytes.get(self.pos) == Some(&b' ') {
            self.pos += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_expression_in_a_question() {
        assert_eq!(find_expression("What is 2+3?"), Some("2+3"));
        assert_eq!(
            find_expression("Compute (12.5 * 4) - 7, please."),
            Some("(12.5 * 4) - 7")
        );
        assert_eq!(find_expression("What time is it?"), None);
        assert_eq!(find_expression("Route 66"), None);
    }

    #[test]
    fn evaluates_with_precedence_and_parentheses() {
        assert_eq!(evaluate("2+3"), Ok(5.0));
        assert_eq!(evaluate("2 + 3 * 4"), Ok(14.0));
        assert_eq!(evaluate("(2 + 3) * 4"), Ok(20.0));
        assert_eq!(evaluate("2^3^2"), Ok(512.0));
        assert_eq!(evaluate("-3 - -2"), Ok(-1.0));
        assert_eq!(evaluate("7 % 4"), Ok(3.0));
        assert_eq!(evaluate("1/0"), Err(CalcError::DivisionByZero));
        assert_eq!(evaluate("2 +"), Err(CalcError::Syntax(3)));
        assert_eq!(evaluate("(1"), Err(CalcError::Syntax(2)));
        assert_eq!(evaluate("10^400"), Err(CalcError::NotFinite));
    }

    #[test]
    fn formats_like_a_person() {
        assert_eq!(format_number(5.0), "5");
        assert_eq!(format_number(2.5), "2.5");
        assert_eq!(format_number(1.0 / 3.0), "0.333333333333");
        assert_eq!(format_number(-4.0), "-4");
    }
}
