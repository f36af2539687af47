//! max|x| and the in-order sum of split-K partial results.

op_checks!(reduce, tree);
